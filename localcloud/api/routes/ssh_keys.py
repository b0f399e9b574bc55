"""``/ssh_keys``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...views import ssh_key_json
from ..listing import by_labels, sort_items
from .common import backend_of, json_body, listing, ok, path_id


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


ROUTES = [
    Route("/ssh_keys", list_ssh_keys, methods=["GET"]),
    Route("/ssh_keys", create_ssh_key, methods=["POST"]),
    Route("/ssh_keys/{id:hid}", get_ssh_key, methods=["GET"]),
    Route("/ssh_keys/{id:hid}", update_ssh_key, methods=["PUT"]),
    Route("/ssh_keys/{id:hid}", delete_ssh_key, methods=["DELETE"]),
]
