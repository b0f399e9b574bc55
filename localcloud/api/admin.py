"""The admin API under ``/__localcloud/`` (not Hetzner's; no token): fault rules, the request
log, state, reset, stand-in SSH logs, serial consoles, and the artifact mirror."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ..artifacts import mirror_info
from ..faults import FaultSpec
from ..machines.stub import StubAnswer
from ..placement import Placement

if TYPE_CHECKING:
    from .app import AppState


def _not_found(message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": "not_found", "message": message, "details": None}}, 404)


def _state(request: Request) -> AppState:
    return request.app.state.localcloud  # type: ignore[no-any-return]


async def admin_list_faults(request: Request) -> Response:
    return JSONResponse({"faults": [r.to_json() for r in _state(request).faults.rules]})


async def admin_add_fault(request: Request) -> Response:
    try:
        spec = FaultSpec.model_validate_json(await request.body())
    except (ValidationError, ValueError) as e:
        return JSONResponse({"error": {"code": "invalid_input", "message": str(e), "details": None}}, status_code=422)
    rule = _state(request).faults.add(spec)
    return JSONResponse({"fault": rule.to_json()}, status_code=201)


async def admin_clear_faults(request: Request) -> Response:
    _state(request).faults.clear()
    return Response(status_code=204)


async def admin_delete_fault(request: Request) -> Response:
    found = _state(request).faults.remove(int(request.path_params["id"]))
    return Response(status_code=204 if found else 404)


async def admin_requests(request: Request) -> Response:
    st = _state(request)
    return JSONResponse({"requests": [r.to_json() for r in st.requests], "in_flight": st.in_flight})


async def admin_clear_requests(request: Request) -> Response:
    _state(request).requests.clear()
    return Response(status_code=204)


async def admin_state(request: Request) -> Response:
    st = _state(request)
    data = st.backend.dump()
    data["rate_limit"] = {"limit": st.bucket.limit, "remaining": st.bucket.remaining, "reset": st.bucket.reset_at()}
    data["faults"] = [r.to_json() for r in st.faults.rules]
    return JSONResponse(data)


async def admin_reset(request: Request) -> Response:
    st = _state(request)
    await st.backend.reset()
    st.faults.clear()
    st.requests.clear()
    st.exchanges.clear()
    st.pulls.clear()
    st.bucket.refill()
    return Response(status_code=204)


async def admin_ssh_log(request: Request) -> Response:
    driver = _state(request).backend.driver
    ssh_log = getattr(driver, "ssh_log", None)
    if ssh_log is None:
        return _not_found("this backend records no SSH log")
    return JSONResponse({"commands": [r.to_json() for r in ssh_log(int(request.path_params["id"]))]})


async def admin_console(request: Request) -> Response:
    """A server's serial console log, while it runs and after it is deleted (qemu backend)."""
    sid = int(request.path_params["id"])
    console_log = getattr(_state(request).backend.driver, "console_log", None)
    path = console_log(sid) if console_log is not None else None
    if path is None:
        return _not_found(f"no serial console log for server {sid} (only the qemu backend keeps them)")
    text = path.read_text(errors="replace")
    return PlainTextResponse(text, headers={"X-Localcloud-Console-Path": str(path)})


def _api_address(request: Request) -> tuple[str, int]:
    host, port = request.scope.get("server") or ("127.0.0.1", 0)
    return str(host), int(port)


async def admin_mirror(request: Request) -> Response:
    """Where the artifact mirror is (for the host and for the VMs) and what it serves."""
    return JSONResponse(mirror_info(_state(request).mirror_root, *_api_address(request)))


async def admin_mirror_file(request: Request) -> Response:
    root = _state(request).mirror_root.resolve()
    path = (root / request.path_params["path"]).resolve()
    if root not in path.parents or not path.is_file():
        return _not_found(f"{request.path_params['path']} is not in the artifact mirror ({root})")
    return FileResponse(path)


async def admin_set_placement(request: Request) -> Response:
    """One server type in one location: available, deprecated, or refusing creates."""
    try:
        p = Placement.model_validate_json(await request.body())
    except (ValidationError, ValueError) as e:
        return JSONResponse({"error": {"code": "invalid_input", "message": str(e), "details": None}}, status_code=422)
    _state(request).backend.placement[(p.server_type, p.location)] = p
    return JSONResponse({"placement": p.model_dump(mode="json")})


async def admin_clear_placement(request: Request) -> Response:
    _state(request).backend.placement.clear()
    return Response(status_code=204)


async def admin_add_stub_answer(request: Request) -> Response:
    """Stub backend: commands matching ``match`` (a regular expression) print ``stdout``."""
    answers = getattr(_state(request).backend.driver, "answers", None)
    if answers is None:
        return _not_found("canned answers exist only on the stub backend")
    body = json.loads(await request.body() or b"{}")
    try:
        re.compile(str(body["match"]))
        answers.insert(0, StubAnswer(str(body["match"]), str(body.get("stdout", ""))))
    except (KeyError, re.error) as e:
        return JSONResponse({"error": {"code": "invalid_input", "message": str(e), "details": None}}, status_code=422)
    return JSONResponse({"answers": len(answers)}, status_code=201)


async def admin_clear_stub_answers(request: Request) -> Response:
    answers = getattr(_state(request).backend.driver, "answers", None)
    if answers is not None:
        answers.clear()
    return Response(status_code=204)


ADMIN_ROUTES = [
    Route("/stub/answers", admin_add_stub_answer, methods=["POST"]),
    Route("/stub/answers", admin_clear_stub_answers, methods=["DELETE"]),
    Route("/placement", admin_set_placement, methods=["PUT"]),
    Route("/placement", admin_clear_placement, methods=["DELETE"]),
    Route("/faults", admin_list_faults, methods=["GET"]),
    Route("/faults", admin_add_fault, methods=["POST"]),
    Route("/faults", admin_clear_faults, methods=["DELETE"]),
    Route("/faults/{id:hid}", admin_delete_fault, methods=["DELETE"]),
    Route("/requests", admin_requests, methods=["GET"]),
    Route("/requests", admin_clear_requests, methods=["DELETE"]),
    Route("/state", admin_state, methods=["GET"]),
    Route("/reset", admin_reset, methods=["POST"]),
    Route("/servers/{id:hid}/ssh-log", admin_ssh_log, methods=["GET"]),
    Route("/servers/{id:hid}/console", admin_console, methods=["GET"]),
    Route("/mirror", admin_mirror, methods=["GET"]),
    Route("/mirror/files/{path:path}", admin_mirror_file, methods=["GET"]),
]
