"""What every ``/v1`` handler uses: the backend, the JSON body, answers and listings."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from ...backend import Backend
from ...errors import APIError
from ..listing import paginate


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
