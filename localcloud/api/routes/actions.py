"""``/actions``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...errors import invalid_input
from ...views import action_json
from ..listing import enum_params, sort_items
from .common import backend_of, listing, ok, path_id


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


ROUTES = [
    Route("/actions", list_actions, methods=["GET"]),
    Route("/actions/{id:hid}", get_action, methods=["GET"]),
]
