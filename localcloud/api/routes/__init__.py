"""The ``/v1`` resources, one module each. Each handler parses the request, calls the
backend, shapes JSON."""

from __future__ import annotations

from . import actions, catalog, images, servers, ssh_keys
from .common import backend_of, json_body

ROUTES = [*ssh_keys.ROUTES, *servers.ROUTES, *images.ROUTES, *actions.ROUTES, *catalog.ROUTES]

__all__ = ["ROUTES", "backend_of", "json_body"]
