"""``/servers`` and their actions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...backend import Backend
from ...views import action_json, image_json, server_json
from ..listing import by_labels, enum_params, sort_items
from .common import backend_of, json_body, listing, ok, path_id

SERVER_STATUSES = (
    "running",
    "initializing",
    "starting",
    "stopping",
    "off",
    "deleting",
    "migrating",
    "rebuilding",
    "unknown",
)


# ---------------------------------------------------------------------------- servers
def _server_json(b: Backend) -> Callable[[Any], dict[str, Any]]:
    return lambda s: server_json(s, b.server_image(s))


async def list_servers(request: Request) -> Response:
    b = backend_of(request)
    items = list(b.servers.values())
    if name := request.query_params.get("name"):
        items = [s for s in items if s.name == name]
    if statuses := enum_params(request, "status", SERVER_STATUSES):
        items = [s for s in items if s.status in statuses]
    items = by_labels(request, items, lambda s: s.labels)
    items = sort_items(request, items, {"id": lambda s: s.id, "name": lambda s: s.name, "created": lambda s: s.created})
    return listing(request, "servers", items, _server_json(b))


async def create_server(request: Request) -> Response:
    b = backend_of(request)
    body = await json_body(request)
    server, action, nxt, root_password = b.create_server(body)
    return ok(
        {
            "server": server_json(server, b.server_image(server)),
            "action": action_json(action),
            "next_actions": [action_json(a) for a in nxt],
            "root_password": root_password,
        },
        201,
    )


async def get_server(request: Request) -> Response:
    b = backend_of(request)
    s = b.get_server(path_id(request))
    return ok({"server": server_json(s, b.server_image(s))})


async def update_server(request: Request) -> Response:
    b = backend_of(request)
    body = await json_body(request)
    s = b.update_server(path_id(request), body.get("name"), body.get("labels"))
    return ok({"server": server_json(s, b.server_image(s))})


async def delete_server(request: Request) -> Response:
    return ok({"action": action_json(backend_of(request).delete_server(path_id(request)))})


async def server_action(request: Request) -> Response:
    b = backend_of(request)
    body = await json_body(request)
    action, image = b.server_action(path_id(request), request.path_params["action"], body)
    if image is not None:
        return ok({"image": image_json(image), "action": action_json(action)}, 201)
    return ok({"action": action_json(action)}, 201)


# ---------------------------------------------------------------------------- images


ROUTES = [
    Route("/servers", list_servers, methods=["GET"]),
    Route("/servers", create_server, methods=["POST"]),
    Route("/servers/{id:hid}", get_server, methods=["GET"]),
    Route("/servers/{id:hid}", update_server, methods=["PUT"]),
    Route("/servers/{id:hid}", delete_server, methods=["DELETE"]),
    Route("/servers/{id:hid}/actions/{action}", server_action, methods=["POST"]),
]
