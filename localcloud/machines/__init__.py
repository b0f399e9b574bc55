"""Machine backends: what a server *is* behind the API (a recording stand-in or a real VM)."""
