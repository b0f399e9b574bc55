"""``/images``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...views import image_json
from ..listing import by_labels, enum_params, int_param, sort_items
from .common import backend_of, json_body, listing, ok, path_id


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


ROUTES = [
    Route("/images", list_images, methods=["GET"]),
    Route("/images/{id:hid}", get_image, methods=["GET"]),
    Route("/images/{id:hid}", update_image, methods=["PUT"]),
    Route("/images/{id:hid}", delete_image, methods=["DELETE"]),
]
