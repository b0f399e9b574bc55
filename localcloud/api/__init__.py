"""The HTTP layer ("responses"): routes, query parsing, pagination, auth, limits, faults."""
