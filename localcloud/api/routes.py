"""The ``/v1`` resources. Each handler parses the request, calls the backend, shapes JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..backend import Backend
from ..catalog import DATACENTERS, LOCATIONS, SERVER_TYPES
from ..errors import APIError, invalid_input
from ..views import action_json, image_json, server_json, ssh_key_json
from .listing import by_labels, enum_params, int_param, paginate, sort_items

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


def backend_of(request: Request) -> Backend:
    return request.app.state.backend  # type: ignore[no-any-return]


async def json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as e:
        # RecursionError: nesting deeper than the parser's stack; a client error all the same.
        raise APIError("json_error", f"request body is not valid JSON: {type(e).__name__}") from e
    if not isinstance(body, dict):
        raise APIError("json_error", "request body must be a JSON object")
    return body


def ok(data: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(data, status_code=status, headers=headers)


def listing(request: Request, key: str, items: list[Any], to_json: Callable[[Any], dict[str, Any]]) -> JSONResponse:
    page, meta, headers = paginate(request, items)
    return ok({key: [to_json(i) for i in page], **meta}, headers=headers)


def path_id(request: Request) -> int:
    return int(request.path_params["id"])


# ---------------------------------------------------------------------------- ssh keys
async def list_ssh_keys(request: Request) -> Response:
    b = backend_of(request)
    items = list(b.ssh_keys.values())
    if name := request.query_params.get("name"):
        items = [k for k in items if k.name == name]
    if fp := request.query_params.get("fingerprint"):
        items = [k for k in items if k.fingerprint == fp]
    items = by_labels(request, items, lambda k: k.labels)
    items = sort_items(request, items, {"id": lambda k: k.id, "name": lambda k: k.name, "created": lambda k: k.created})
    return listing(request, "ssh_keys", items, ssh_key_json)


async def create_ssh_key(request: Request) -> Response:
    body = await json_body(request)
    key = backend_of(request).create_ssh_key(body.get("name"), body.get("public_key"), body.get("labels"))
    return ok({"ssh_key": ssh_key_json(key)}, 201)


async def get_ssh_key(request: Request) -> Response:
    return ok({"ssh_key": ssh_key_json(backend_of(request).get_ssh_key(path_id(request)))})


async def update_ssh_key(request: Request) -> Response:
    body = await json_body(request)
    key = backend_of(request).update_ssh_key(path_id(request), body.get("name"), body.get("labels"))
    return ok({"ssh_key": ssh_key_json(key)})


async def delete_ssh_key(request: Request) -> Response:
    backend_of(request).delete_ssh_key(path_id(request))
    return Response(status_code=204)  # no body, no JSON content type: hcloud-go 1.x chokes otherwise


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
async def list_images(request: Request) -> Response:
    b = backend_of(request)
    items = list(b.images.values())
    if types := enum_params(request, "type", ("system", "app", "snapshot", "backup")):
        items = [i for i in items if i.type in types]
    if statuses := enum_params(request, "status", ("available", "creating", "unavailable")):
        items = [i for i in items if i.status in statuses]
    if (bound_to := int_param(request, "bound_to")) is not None:
        items = [i for i in items if i.bound_to == bound_to]
    if name := request.query_params.get("name"):
        items = [i for i in items if i.name == name]
    if archs := enum_params(request, "architecture", ("x86", "arm")):
        items = [i for i in items if i.architecture in archs]
    if request.query_params.get("include_deprecated", "false").lower() != "true":
        items = [i for i in items if i.deprecated is None]
    items = by_labels(request, items, lambda i: i.labels)
    items = sort_items(
        request,
        items,
        {
            "id": lambda i: i.id,
            "name": lambda i: i.name or "",
            "description": lambda i: i.description,
            "created": lambda i: i.created,
        },
    )
    return listing(request, "images", items, image_json)


async def get_image(request: Request) -> Response:
    return ok({"image": image_json(backend_of(request).get_image(path_id(request)))})


async def update_image(request: Request) -> Response:
    body = await json_body(request)
    return ok({"image": image_json(backend_of(request).update_image(path_id(request), body))})


async def delete_image(request: Request) -> Response:
    await backend_of(request).delete_image(path_id(request))
    return Response(status_code=204)


# ---------------------------------------------------------------------------- actions
async def list_actions(request: Request) -> Response:
    b = backend_of(request)
    raw_ids = request.query_params.getlist("id")
    if not raw_ids:
        raise invalid_input("id", "is required (listing all actions was removed on 30 January 2025)")
    try:
        ids = {int(i) for i in raw_ids}
    except ValueError as e:
        raise invalid_input("id", "must be integers") from e
    items = [b.actions[i] for i in ids if i in b.actions]
    if statuses := enum_params(request, "status", ("running", "success", "error")):
        items = [a for a in items if a.status in statuses]
    items = sort_items(
        request,
        items,
        {
            "id": lambda a: a.id,
            "command": lambda a: a.command,
            "status": lambda a: a.status,
            "started": lambda a: a.started,
            "finished": lambda a: a.finished or a.started,
        },
    )
    return listing(request, "actions", items, action_json)


async def get_action(request: Request) -> Response:
    return ok({"action": action_json(backend_of(request).get_action(path_id(request)))})


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
    Route("/ssh_keys", list_ssh_keys, methods=["GET"]),
    Route("/ssh_keys", create_ssh_key, methods=["POST"]),
    Route("/ssh_keys/{id:hid}", get_ssh_key, methods=["GET"]),
    Route("/ssh_keys/{id:hid}", update_ssh_key, methods=["PUT"]),
    Route("/ssh_keys/{id:hid}", delete_ssh_key, methods=["DELETE"]),
    Route("/servers", list_servers, methods=["GET"]),
    Route("/servers", create_server, methods=["POST"]),
    Route("/servers/{id:hid}", get_server, methods=["GET"]),
    Route("/servers/{id:hid}", update_server, methods=["PUT"]),
    Route("/servers/{id:hid}", delete_server, methods=["DELETE"]),
    Route("/servers/{id:hid}/actions/{action}", server_action, methods=["POST"]),
    Route("/images", list_images, methods=["GET"]),
    Route("/images/{id:hid}", get_image, methods=["GET"]),
    Route("/images/{id:hid}", update_image, methods=["PUT"]),
    Route("/images/{id:hid}", delete_image, methods=["DELETE"]),
    Route("/actions", list_actions, methods=["GET"]),
    Route("/actions/{id:hid}", get_action, methods=["GET"]),
    Route("/server_types", _st_list, methods=["GET"]),
    Route("/server_types/{id:hid}", _st_get, methods=["GET"]),
    Route("/locations", _loc_list, methods=["GET"]),
    Route("/locations/{id:hid}", _loc_get, methods=["GET"]),
    Route("/datacenters", list_datacenters, methods=["GET"]),
    Route("/datacenters/{id:hid}", _dc_get, methods=["GET"]),
]
