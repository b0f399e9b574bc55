"""localcloud: a local Hetzner Cloud API whose servers are real VMs (or recording stand-ins)."""
