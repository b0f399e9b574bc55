"""The ASGI application: ``/v1`` behind a gate (auth, rate limit, faults, request log) plus the
admin API under ``/__localcloud/``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..backend import ACTION_FAULT, ActionFault, Backend
from ..errors import APIError
from ..faults import FaultRegistry
from ..ratelimit import TokenBucket
from .admin import ADMIN_ROUTES
from .registry import REGISTRY_ROUTES, Pull
from .routes import ROUTES

log = logging.getLogger("localcloud")


@dataclass
class RequestRecord:
    time: float
    method: str
    path: str
    query: str
    status: int
    duration_ms: float
    fault: int | None = None

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass
class Exchange:
    """A whole request/response pair, kept only when recording is on (conformance tests)."""

    method: str
    path: str
    query: str
    status: int
    content_type: str | None
    body: bytes
    # A bare (non-JSON) answer injected by a fault rule: it imitates a proxy, not the API.
    injected_bare: bool = False


@dataclass
class GateConfig:
    tokens: frozenset[str] = frozenset()  # empty: any non-empty bearer token is accepted
    record_exchanges: bool = False


@dataclass
class AppState:
    backend: Backend
    bucket: TokenBucket
    faults: FaultRegistry = field(default_factory=FaultRegistry)
    requests: list[RequestRecord] = field(default_factory=list)
    # Requests a handler is still working on (a delayed one carries on after its client gave up,
    # as Hetzner does): tests wait for 0 instead of sleeping.
    in_flight: int = 0
    exchanges: list[Exchange] = field(default_factory=list)
    config: GateConfig = field(default_factory=GateConfig)
    # The artifact mirror served under /__localcloud/mirror/files (populated or not).
    mirror_root: Path = field(default_factory=lambda: Path("/nonexistent"))
    # Every request to the mirror's registry (localcloud.api.registry): what the VMs pulled.
    pulls: list[Pull] = field(default_factory=list)


def _error_response(err: APIError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status, headers=headers)


def _abort_connection(send: Send) -> bool:
    """Drop the TCP connection under this request without an answer.

    ASGI has no verb for this; uvicorn's ``send`` is a bound method of the request cycle that
    owns the transport, which is what we reach for. False if the server is not uvicorn.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        return False
    transport.abort()
    return True


class Gate:
    """Wraps the ``/v1`` app with what happens before a request reaches a handler."""

    def __init__(self, app: ASGIApp, state: AppState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1"):
            await self.app(scope, receive, send)
            return
        st = self.state
        start = time.monotonic()
        method, path = scope["method"], scope["path"]
        # HTTP header and query bytes are not promised to be UTF-8: latin-1 reads any byte (a
        # client's stray byte is its problem to hear about as a 4xx, never a 500 here).
        query = scope.get("query_string", b"").decode("latin-1")
        record = RequestRecord(time.time(), method, path, query, 0, 0.0)
        st.requests.append(record)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        correlation = uuid.uuid4().hex[:16]
        captured: dict[str, Any] = {"status": 0, "headers": [], "body": bytearray(), "done": False}

        def finish() -> None:
            # Runs before the last body chunk is handed to the server: a client that has its answer
            # must find the request (and its exchange) in the logs, or tests race the server thread.
            if captured["done"]:
                return
            captured["done"] = True
            record.status = captured["status"]
            record.duration_ms = round((time.monotonic() - start) * 1000, 2)
            if st.config.record_exchanges and captured["status"]:
                ctype = next((v.decode() for k, v in captured["headers"] if k.decode().lower() == "content-type"), None)
                rule = next((r for r in st.faults.rules if r.id == record.fault), None)
                bare = rule is not None and rule.spec.bare and rule.spec.kind in ("error", "drop")
                st.exchanges.append(
                    Exchange(method, path, query, captured["status"], ctype, bytes(captured["body"]), bare)
                )

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                extra = {**st.bucket.headers(), "X-Correlation-Id": correlation}
                message["headers"] = list(message.get("headers", [])) + [
                    (k.encode(), v.encode()) for k, v in extra.items()
                ]
                captured["headers"] = message["headers"]
            elif message["type"] == "http.response.body":
                if st.config.record_exchanges:
                    captured["body"] += message.get("body", b"")
                if not message.get("more_body", False):
                    finish()
            await send(message)

        st.in_flight += 1
        try:
            await self._handle(scope, receive, send, send_wrapper, headers, record, method, path)
        finally:
            st.in_flight -= 1
            finish()

    async def _handle(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        send_wrapper: Send,
        headers: dict[str, str],
        record: RequestRecord,
        method: str,
        path: str,
    ) -> None:
        st = self.state
        auth = headers.get("authorization", "")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        if not token or (st.config.tokens and token not in st.config.tokens):
            err = APIError("unauthorized", "unable to authenticate")
            await _error_response(err)(scope, receive, send_wrapper)
            return
        if not st.bucket.take():
            err = APIError("rate_limit_exceeded", "limit of 3600 requests per hour reached")
            await _error_response(err)(scope, receive, send_wrapper)
            return
        rule = st.faults.match(method, path)
        if rule is not None:
            record.fault = rule.id
            kind = rule.spec.kind
            if kind == "drop" and _abort_connection(send):
                return
            if kind == "error" or kind == "drop":
                message = rule.spec.message or f"injected fault {rule.id}"
                if rule.spec.bare:
                    await Response(message, status_code=rule.status, media_type="text/plain")(
                        scope, receive, send_wrapper
                    )
                else:
                    await _error_response(APIError(rule.spec.code, message, status=rule.status))(
                        scope, receive, send_wrapper
                    )
                return
            if kind == "drop_after":

                async def swallow(message: Message) -> None:
                    return None

                await self.app(scope, receive, swallow)
                if _abort_connection(send):
                    return
                await _error_response(APIError("server_error", "connection dropped"))(scope, receive, send_wrapper)
                return
            if kind == "delay":
                # Read the request first, then wait: the request is carried out after the delay
                # even when the client has gone meanwhile — as a real API executes what it
                # received (an interrupted client must look again for what it created).
                body = await _read_body(receive)
                await asyncio.sleep(rule.spec.seconds)
                await self.app(scope, _replay(body), _ignore_gone(send_wrapper))
                return
            if kind == "delay_answer":
                # The work is done at once; only the answer is late.
                body = await _read_body(receive)
                response: list[Message] = []

                async def hold(held: Message) -> None:
                    response.append(held)

                await self.app(scope, _replay(body), hold)
                await asyncio.sleep(rule.spec.seconds)
                for held in response:
                    await _ignore_gone(send_wrapper)(held)
                return
            if kind == "action_error":
                token_ctx = ACTION_FAULT.set(
                    ActionFault(
                        rule.spec.code if rule.spec.code != "server_error" else "action_failed",
                        rule.spec.message or "Action failed",
                        effect=rule.spec.effect,
                    )
                )
                try:
                    await self.app(scope, receive, send_wrapper)
                finally:
                    ACTION_FAULT.reset(token_ctx)
                return
        await self.app(scope, receive, send_wrapper)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # like a client that keeps the connection, saying nothing more
        raise AssertionError("unreachable")

    return receive


def _ignore_gone(send: Send) -> Send:
    """An answer to a client that has left goes nowhere; the work it asked for stands."""

    async def wrapped(message: Message) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            await send(message)

    return wrapped


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, APIError)
    return _error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        return _error_response(
            APIError("method_not_allowed", f"method {request.method} not allowed on {request.url.path}")
        )
    return _error_response(APIError("not_found", f"{request.url.path} not found", status=exc.status_code))


async def _unexpected(request: Request, exc: Exception) -> Response:
    return _error_response(APIError("server_error", f"internal error: {type(exc).__name__}"))


def _lifespan(backend: Backend) -> Any:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await backend.close()
        log.info("localcloud stopped; no machine is left running")

    return lifespan


def create_app(
    backend: Backend,
    *,
    bucket: TokenBucket | None = None,
    config: GateConfig | None = None,
    mirror_root: Path | None = None,
) -> tuple[ASGIApp, AppState]:
    state = AppState(backend=backend, bucket=bucket or TokenBucket(), config=config or GateConfig())
    if mirror_root is not None:
        state.mirror_root = mirror_root
    inner = Starlette(
        routes=[Mount("/v1", routes=ROUTES), Mount("/__localcloud", routes=[*REGISTRY_ROUTES, *ADMIN_ROUTES])],
        exception_handlers={APIError: _api_error, HTTPException: _http_error, Exception: _unexpected},
        lifespan=_lifespan(backend),
    )
    inner.state.backend = backend
    inner.state.localcloud = state
    return Gate(inner, state), state
