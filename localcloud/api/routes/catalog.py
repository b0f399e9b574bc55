"""The catalog: ``/server_types``, ``/locations``, ``/datacenters``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...catalog import DATACENTERS, LOCATIONS, SERVER_TYPES
from ...errors import APIError
from ..listing import sort_items
from .common import backend_of, listing, ok, path_id


# ---------------------------------------------------------------------------- catalog
def _catalog(key: str, items: tuple[Any, ...], singular: str) -> tuple[Callable[..., Any], Callable[..., Any]]:
    async def list_(request: Request) -> Response:
        chosen = list(items)
        if name := request.query_params.get("name"):
            chosen = [i for i in chosen if i.name == name]
        chosen = sort_items(request, chosen, {"id": lambda i: i.id, "name": lambda i: i.name})
        return listing(request, key, chosen, lambda i: i.to_json())

    async def get(request: Request) -> Response:
        ident = path_id(request)
        for i in items:
            if i.id == ident:
                return ok({singular: i.to_json()})
        raise APIError("not_found", f"{singular} with ID '{ident}' not found")

    return list_, get


async def _st_list(request: Request) -> Response:
    placement = backend_of(request).placement
    items = list(SERVER_TYPES)
    if name := request.query_params.get("name"):
        items = [i for i in items if i.name == name]
    return listing(request, "server_types", items, lambda st: st.to_json(placement))


async def _st_get(request: Request) -> Response:
    ident = path_id(request)
    for st in SERVER_TYPES:
        if st.id == ident:
            return ok({"server_type": st.to_json(backend_of(request).placement)})
    raise APIError("not_found", f"server_type with ID '{ident}' not found")


_loc_list, _loc_get = _catalog("locations", LOCATIONS, "location")
_dc_list, _dc_get = _catalog("datacenters", DATACENTERS, "datacenter")


async def list_datacenters(request: Request) -> Response:
    response = await _dc_list(request)
    data = json.loads(bytes(response.body))
    data["recommendation"] = DATACENTERS[0].id
    return ok(data, headers={k: v for k, v in response.headers.items() if k.lower() == "link"})


ROUTES = [
    Route("/server_types", _st_list, methods=["GET"]),
    Route("/server_types/{id:hid}", _st_get, methods=["GET"]),
    Route("/locations", _loc_list, methods=["GET"]),
    Route("/locations/{id:hid}", _loc_get, methods=["GET"]),
    Route("/datacenters", list_datacenters, methods=["GET"]),
    Route("/datacenters/{id:hid}", _dc_get, methods=["GET"]),
]
