"""Running localcloud: as a process (``python -m localcloud serve``) or in-process (tests)."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import uvicorn

from .api.app import AppState, GateConfig, create_app
from .artifacts import mirror_root
from .backend import Backend
from .machines.base import MachineDriver
from .paths import default_cache_dir
from .ratelimit import TokenBucket

BackendKind = Literal["stub", "qemu"]


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 0
    backend: BackendKind = "stub"
    state_dir: Path | None = None
    cache_dir: Path | None = None
    action_times: dict[str, float] = field(default_factory=dict)
    tokens: frozenset[str] = frozenset()
    rate_limit: int = 3600
    rate_refill: float = 1.0
    accel: str = "auto"
    record_exchanges: bool = False
    vm_memory_mb: int = 2048
    vm_cpus: int = 2


def make_driver(settings: Settings) -> MachineDriver:
    if settings.backend == "stub":
        from .machines.stub import StubDriver

        return StubDriver(
            guest_shutdown_seconds=settings.action_times.get("guest_shutdown", 1.0),
            command_seconds=settings.action_times.get("stub_command", 0.0),
        )
    from .machines.qemu import QemuDriver

    if settings.state_dir is None:
        raise ValueError("the qemu backend needs a state directory for disks")
    return QemuDriver(
        state_dir=settings.state_dir,
        cache_dir=settings.cache_dir or default_cache_dir(),
        accel=settings.accel,
        memory_mb=settings.vm_memory_mb,
        cpus=settings.vm_cpus,
    )


def build(settings: Settings) -> tuple[Any, AppState]:
    if settings.state_dir is not None:
        settings.state_dir.mkdir(parents=True, exist_ok=True)
    driver = make_driver(settings)
    backend = Backend(driver, action_times=settings.action_times, state_dir=settings.state_dir)
    bucket = TokenBucket(limit=settings.rate_limit, refill_per_second=settings.rate_refill)
    config = GateConfig(tokens=settings.tokens, record_exchanges=settings.record_exchanges)
    mirror = mirror_root(settings.cache_dir or default_cache_dir())
    return create_app(backend, bucket=bucket, config=config, mirror_root=mirror)


def bound_port(server: uvicorn.Server) -> int:
    for s in server.servers:
        for sock in s.sockets:
            return int(sock.getsockname()[1])
    raise RuntimeError("uvicorn is not listening")


# How long an idle keep-alive connection stays open. uvicorn's default (5 s) equals a common
# poll interval: a client reusing its pooled connection just as the server closed it got
# "Connection reset by peer" (seen by a build's server wait and by make parity's). Load
# balancers in front of real APIs keep idle connections for a minute or more.
KEEP_ALIVE_SECONDS = 75


class LocalCloud:
    """localcloud on a background thread with its own event loop; a context manager."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.app, self.state = build(self.settings)
        config = uvicorn.Config(
            self.app,
            host=self.settings.host,
            port=self.settings.port,
            log_level="warning",
            lifespan="on",
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
        )
        self.server = uvicorn.Server(config)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name="localcloud", daemon=True)
        self.port = 0

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.server.serve())
        self.loop.close()

    def start(self) -> LocalCloud:
        self._thread.start()
        while not self.server.started:
            if not self._thread.is_alive():
                raise RuntimeError("localcloud failed to start")
            threading.Event().wait(0.02)
        self.port = bound_port(self.server)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=60)

    def __enter__(self) -> LocalCloud:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.settings.host}:{self.port}"

    @property
    def endpoint(self) -> str:
        return f"{self.base_url}/v1"

    def admin(self) -> AdminClient:
        return AdminClient(self.base_url)

    def call(self, fn: Any) -> Any:
        """Run ``fn()`` on the server's loop and return its result (for direct state access)."""
        assert self.loop is not None

        async def run() -> Any:
            result = fn()
            if asyncio.iscoroutine(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=120)


class AdminClient:
    """A thin client for ``/__localcloud/`` (documented in docs/localcloud.md)."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=f"{base_url}/__localcloud", timeout=30)

    def add_fault(self, **spec: Any) -> dict[str, Any]:
        r = self.http.post("/faults", json=spec)
        r.raise_for_status()
        return r.json()["fault"]  # type: ignore[no-any-return]

    def faults(self) -> list[dict[str, Any]]:
        return self.http.get("/faults").json()["faults"]  # type: ignore[no-any-return]

    def clear_faults(self) -> None:
        self.http.delete("/faults").raise_for_status()

    def requests(self) -> list[dict[str, Any]]:
        return self.http.get("/requests").json()["requests"]  # type: ignore[no-any-return]

    def in_flight(self) -> int:
        """How many API requests localcloud is working on now."""
        return int(self.http.get("/requests").json()["in_flight"])

    def settle(self, timeout: float = 30) -> None:
        """Return once no API request is being worked on (a delayed request carried out after
        its client gave up has landed)."""
        end = time.monotonic() + timeout
        while self.in_flight():
            if time.monotonic() > end:
                raise TimeoutError(f"localcloud still working on requests after {timeout}s")
            time.sleep(0.05)

    def clear_requests(self) -> None:
        self.http.delete("/requests").raise_for_status()

    def state(self) -> dict[str, Any]:
        return self.http.get("/state").json()  # type: ignore[no-any-return]

    def reset(self) -> None:
        self.http.post("/reset").raise_for_status()

    def console(self, server_id: int) -> str:
        r = self.http.get(f"/servers/{server_id}/console")
        r.raise_for_status()
        return r.text

    def answer(self, match: str, stdout: str) -> None:
        """Stub backend: commands matching ``match`` print ``stdout`` (the newest match wins)."""
        self.http.post("/stub/answers", json={"match": match, "stdout": stdout}).raise_for_status()

    def clear_answers(self) -> None:
        self.http.delete("/stub/answers").raise_for_status()

    def set_placement(self, server_type: str, location: str, **fields: Any) -> None:
        """e.g. ``refuse="resource_unavailable"``, ``available=False``,
        ``deprecation={"announced": ..., "unavailable_after": ...}``."""
        self.http.put(
            "/placement", json={"server_type": server_type, "location": location, **fields}
        ).raise_for_status()

    def clear_placement(self) -> None:
        self.http.delete("/placement").raise_for_status()

    def mirror(self) -> dict[str, Any]:
        return self.http.get("/mirror").json()  # type: ignore[no-any-return]

    def ssh_log(self, server_id: int) -> list[dict[str, Any]]:
        return self.http.get(f"/servers/{server_id}/ssh-log").json()["commands"]  # type: ignore[no-any-return]
