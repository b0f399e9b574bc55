"""The emulated cloud's shared state: ids, actions and their tasks, lookups, persistence.

Every mutating call validates its input first, then changes state, then starts an asyncio task
that runs the machine operation and settles the action. All methods run on the event loop
thread, so state needs no locks. The resources' behaviour is in one module each (servers,
server actions, images, SSH keys), as moto keeps one backend per resource.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import APIError, not_found
from ..machines.base import MachineDriver
from ..models import Action, Image, Server, SSHKey, rfc3339
from ..netalloc import LoopbackAllocator
from ..placement import Placement

log = logging.getLogger("localcloud")

DEFAULT_ACTION_TIMES: dict[str, float] = {
    "create_server": 1.0,
    "start_server": 1.0,
    "stop_server": 1.0,
    "shutdown_server": 0.5,
    "reboot_server": 1.0,
    "reset_server": 1.0,
    "create_image": 2.0,
    "delete_server": 1.0,
    # Not actions: how long a stand-in guest takes to power off after the ACPI button, and to
    # answer one SSH command.
    "guest_shutdown": 1.0,
    "stub_command": 0.0,
}


@dataclass(frozen=True)
class ActionFault:
    """Makes the next action(s) of one request end in ``error`` (set by the HTTP fault layer)."""

    code: str = "action_failed"
    message: str = "Action failed"
    # The work is done all the same (e.g. the snapshot turns out fine); only the action lies.
    effect: bool = False


# The HTTP layer sets this for the duration of one request; every action that request creates
# ends in error and its operation is not carried out.
ACTION_FAULT: contextvars.ContextVar[ActionFault | None] = contextvars.ContextVar("action_fault", default=None)


class BackendCore:
    def __init__(
        self,
        driver: MachineDriver,
        *,
        action_times: dict[str, float] | None = None,
        state_dir: Path | None = None,
        allocator: LoopbackAllocator | None = None,
    ) -> None:
        self.driver = driver
        self.action_times = {**DEFAULT_ACTION_TIMES, **(action_times or {})}
        self.state_dir = state_dir
        self.allocator = allocator or LoopbackAllocator()
        self.ssh_keys: dict[int, SSHKey] = {}
        self.servers: dict[int, Server] = {}
        self.images: dict[int, Image] = {}
        self.actions: dict[int, Action] = {}
        # (server type, location) -> availability, deprecation, capacity (admin API)
        self.placement: dict[tuple[str, str], Placement] = {}
        self._ids = {"ssh_key": 5_000_000, "server": 60_000_000, "image": 300_000_000, "action": 900_000_000}
        self._tasks: set[asyncio.Task[None]] = set()
        self._system_image_ids: set[int] = set()
        driver.set_power_off_callback(self._guest_powered_off)
        self._register_system_images()
        self._load()

    # ------------------------------------------------------------------ ids, actions, tasks
    def _next_id(self, kind: str) -> int:
        self._ids[kind] += 1
        return self._ids[kind]

    def _new_action(self, command: str, resources: list[tuple[int, str]]) -> Action:
        a = Action(self._next_id("action"), command, resources, self.action_times.get(command, 1.0))
        self.actions[a.id] = a
        return a

    def _spawn(self, coro: Awaitable[None]) -> None:
        async def wrapped() -> None:
            try:
                await coro
            except Exception:  # a failed background step must never kill the loop
                log.exception("background task failed")

        task = asyncio.get_running_loop().create_task(wrapped())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_action(
        self, action: Action, op: Callable[[], Awaitable[Any]] | None, fault: ActionFault | None
    ) -> bool:
        """Run ``op`` and the modelled duration side by side; settle the action. True on success."""
        timer = asyncio.sleep(action.duration)
        if fault is not None and not fault.effect:
            await timer
            action.fail(fault.code, fault.message)
            return False
        try:
            if op is None:
                await timer
            else:
                await asyncio.gather(timer, op())
        except APIError as e:
            action.fail(e.code, e.message)
            return False
        except Exception as e:  # the machine failed: the action reports it like the cloud would
            log.exception("action %s (%s) failed", action.id, action.command)
            action.fail("action_failed", f"{action.command} failed: {e}")
            return False
        if fault is not None:
            action.fail(fault.code, fault.message)
        else:
            action.succeed()
        return True

    async def drain(self) -> None:
        """Wait for running background tasks (tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _guest_powered_off(self, server_id: int) -> None:
        raise NotImplementedError  # servers' (ServerActions)

    def _lock(self, s: Server) -> None:
        if s.locked:
            raise APIError("locked", f"server {s.id} is locked by a running action")
        if s.status == "deleting":
            raise APIError("locked", f"server {s.id} is being deleted")
        s.locked = True

    # ------------------------------------------------------------------ persistence
    def _register_system_images(self) -> None:
        for n, si in enumerate(self.driver.system_images()):
            img = Image(
                id=100_000_000 + n + 1,
                type="system",
                architecture=si.architecture,
                disk_size=si.disk_size,
                os_flavor=si.os_flavor,
                os_version=si.os_version,
                name=si.name,
                description=si.description,
                image_size=None,
                disk_path=si.disk_path,
                kernel_path=si.kernel_path,
                initrd_path=si.initrd_path,
            )
            self.images[img.id] = img
            self._system_image_ids.add(img.id)

    def _state_file(self) -> Path | None:
        return self.state_dir / "state.json" if self.state_dir else None

    def _save(self) -> None:
        path = self._state_file()
        if path is None:
            return
        data = {
            "ids": self._ids,
            "ssh_keys": [{**k.__dict__, "created": rfc3339(k.created)} for k in self.ssh_keys.values()],
            "images": [
                {
                    **{
                        k: v
                        for k, v in i.__dict__.items()
                        if not k.endswith("_path") and k not in {"created", "deprecated"}
                    },
                    "created": rfc3339(i.created),
                    "disk_path": str(i.disk_path) if i.disk_path else None,
                    "kernel_path": str(i.kernel_path) if i.kernel_path else None,
                    "initrd_path": str(i.initrd_path) if i.initrd_path else None,
                }
                for i in self.images.values()
                if i.type != "system" and i.status == "available"
            ],
        }
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(path)

    def _load(self) -> None:

        path = self._state_file()
        if path is None or not path.exists():
            return
        data = json.loads(path.read_text())
        self._ids.update(data.get("ids", {}))
        for k in data.get("ssh_keys", []):
            k["created"] = dt.datetime.fromisoformat(k["created"])
            self.ssh_keys[k["id"]] = SSHKey(**k)
        for i in data.get("images", []):
            i["created"] = dt.datetime.fromisoformat(i["created"])
            for p in ("disk_path", "kernel_path", "initrd_path"):
                i[p] = Path(i[p]) if i.get(p) else None
            self.images[i["id"]] = Image(**i)

    # ------------------------------------------------------------------ lookups
    def get_ssh_key(self, key_id: int) -> SSHKey:
        if key_id not in self.ssh_keys:
            raise not_found("SSH key", key_id)
        return self.ssh_keys[key_id]

    def get_server(self, server_id: int) -> Server:
        if server_id not in self.servers:
            raise not_found("server", server_id)
        return self.servers[server_id]

    def get_image(self, image_id: int) -> Image:
        if image_id not in self.images:
            raise not_found("image", image_id)
        return self.images[image_id]

    def get_action(self, action_id: int) -> Action:
        if action_id not in self.actions:
            raise not_found("action", action_id)
        return self.actions[action_id]

    def server_image(self, s: Server) -> Image | None:
        return self.images.get(s.image_id) if s.image_id is not None else None
