"""The emulated cloud's state and behaviour ("backend", kept apart from HTTP as moto does).

Every mutating call validates its input first, then changes state, then starts an asyncio task
that runs the machine operation and settles the action. All methods run on the event loop
thread, so state needs no locks.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextvars
import datetime as dt
import hashlib
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from .catalog import DATACENTERS_BY_NAME, LOCATIONS_BY_NAME, SERVER_TYPES, SERVER_TYPES_BY_NAME
from .errors import APIError, invalid_input, not_found
from .labels import validate_labels
from .machines.base import MachineDriver
from .models import Action, Image, Server, SSHKey, rfc3339, utcnow
from .netalloc import LoopbackAllocator
from .placement import Placement

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

_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_PUBKEY = re.compile(r"^(ssh-(rsa|ed25519|dss)|ecdsa-sha2-nistp(256|384|521)|sk-\S+)\s+([A-Za-z0-9+/=]+)(\s.*)?$", re.S)


def ssh_fingerprint(public_key: str) -> str:
    m = _PUBKEY.match(public_key.strip())
    if not m:
        raise invalid_input("public_key", "invalid public key")
    try:
        blob = base64.b64decode(m.group(4), validate=True)
        if not m.group(1).startswith("sk-"):
            # The whole key, not just its shape: "ssh-ed25519 AAAA" is no key (Hetzner refuses it).
            serialization.load_ssh_public_key(f"{m.group(1)} {m.group(4)}".encode())
    except (binascii.Error, ValueError, UnsupportedAlgorithm) as e:
        raise invalid_input("public_key", "invalid public key") from e
    digest = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    return ":".join(digest[i : i + 2] for i in range(0, 32, 2))


class Backend:
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
        import datetime as dt

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

    # ------------------------------------------------------------------ ssh keys
    def create_ssh_key(self, name: Any, public_key: Any, labels: Any) -> SSHKey:
        if not isinstance(name, str) or not name:
            raise invalid_input("name", "is required")
        if not isinstance(public_key, str) or not public_key:
            raise invalid_input("public_key", "is required")
        labels = validate_labels(labels)
        fingerprint = ssh_fingerprint(public_key)
        for k in self.ssh_keys.values():
            if k.name == name:
                raise APIError(
                    "uniqueness_error", "SSH key with the same name already exists", {"fields": [{"name": "name"}]}
                )
            if k.fingerprint == fingerprint:
                raise APIError(
                    "uniqueness_error",
                    "SSH key with the same fingerprint already exists",
                    {"fields": [{"name": "public_key"}]},
                )
        key = SSHKey(self._next_id("ssh_key"), name, fingerprint, public_key.strip(), labels)
        self.ssh_keys[key.id] = key
        self._save()
        return key

    def update_ssh_key(self, key_id: int, name: Any, labels: Any) -> SSHKey:
        key = self.get_ssh_key(key_id)
        if name is not None:
            if not isinstance(name, str) or not name:
                raise invalid_input("name", "must be a non-empty string")
            if any(k.name == name and k.id != key_id for k in self.ssh_keys.values()):
                raise APIError(
                    "uniqueness_error", "SSH key with the same name already exists", {"fields": [{"name": "name"}]}
                )
        new_labels = validate_labels(labels) if labels is not None else None
        if name is not None:
            key.name = name
        if new_labels is not None:
            key.labels = new_labels
        self._save()
        return key

    def delete_ssh_key(self, key_id: int) -> None:
        self.get_ssh_key(key_id)
        del self.ssh_keys[key_id]
        self._save()

    # ------------------------------------------------------------------ servers
    def _resolve(self, field: str, value: Any, by_name: dict[str, Any], items: Iterable[Any]) -> Any:
        if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
            for item in items:
                if item.id == int(value):
                    return item
        elif isinstance(value, str) and value in by_name:
            return by_name[value]
        raise invalid_input(field, f"{field} '{value}' not found")

    def _resolve_image(self, value: Any, architecture: str) -> Image:
        if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
            img = self.images.get(int(value))
            if img is None:
                raise invalid_input("image", f"image '{value}' not found")
        elif isinstance(value, str) and value:
            matches = [i for i in self.images.values() if i.name == value and i.architecture == architecture]
            if not matches:
                raise invalid_input("image", f"image '{value}' not found for architecture {architecture}")
            img = matches[0]
        else:
            raise invalid_input("image", "is required")
        if img.architecture != architecture:
            raise invalid_input("image", f"image {img.id} is {img.architecture}, the server type is {architecture}")
        if img.status != "available":
            raise APIError("resource_unavailable", f"image {img.id} is not available (status {img.status})")
        return img

    def _resolve_ssh_keys(self, values: Any) -> list[str]:
        if values is None:
            return []
        if not isinstance(values, list):
            raise invalid_input("ssh_keys", "must be a list")
        out = []
        for v in values:
            key = None
            if isinstance(v, int) or (isinstance(v, str) and v.isdigit()):
                key = self.ssh_keys.get(int(v))
            if key is None and isinstance(v, str):
                key = next((k for k in self.ssh_keys.values() if k.name == v), None)
            if key is None:
                raise invalid_input("ssh_keys", f"SSH key '{v}' not found")
            out.append(key.public_key)
        return out

    def create_server(self, body: dict[str, Any]) -> tuple[Server, Action, list[Action], str | None]:
        name = body.get("name")
        if not isinstance(name, str) or not _HOSTNAME.match(name):
            raise invalid_input("name", "must be a valid hostname (RFC 1123)")
        if "server_type" not in body:
            raise invalid_input("server_type", "is required")
        st = self._resolve("server_type", body["server_type"], SERVER_TYPES_BY_NAME, SERVER_TYPES)
        if body.get("location") is not None:
            loc = self._resolve("location", body["location"], LOCATIONS_BY_NAME, LOCATIONS_BY_NAME.values())
        elif body.get("datacenter") is not None:
            loc = self._resolve(
                "datacenter", body["datacenter"], DATACENTERS_BY_NAME, DATACENTERS_BY_NAME.values()
            ).location
        else:
            loc = LOCATIONS_BY_NAME[st.location_names[0]]
        if loc.name not in st.location_names:
            raise APIError("unsupported_error", f"server type {st.name} is not available in {loc.name}")
        if (placement := self.placement.get((st.name, loc.name))) is not None:
            placement.check_create(dt.datetime.now(dt.UTC))
        image = self._resolve_image(body.get("image"), st.architecture)
        keys = self._resolve_ssh_keys(body.get("ssh_keys"))
        user_data = body.get("user_data")
        if user_data is not None and (not isinstance(user_data, str) or len(user_data.encode()) > 32 * 1024):
            raise invalid_input("user_data", "must be a string of at most 32 KiB")
        labels = validate_labels(body.get("labels"))
        start = body.get("start_after_create", True)
        if not isinstance(start, bool):
            raise invalid_input("start_after_create", "must be a boolean")
        if any(s.name == name for s in self.servers.values()):
            raise APIError("uniqueness_error", "server name is already used", {"fields": [{"name": "name"}]})

        server_id = self._next_id("server")
        ip = self.allocator.allocate({s.ipv4 for s in self.servers.values()})
        server = Server(
            id=server_id,
            name=name,
            server_type=st,
            location=loc,
            image_id=image.id,
            ipv4=ip,
            ipv6_net=f"2001:db8:{server_id % 0xFFFF:x}::/64",
            labels=labels,
            ssh_keys=keys,
            user_data=user_data,
            locked=True,
        )
        self.servers[server.id] = server
        root_password = (
            None if keys else base64.b32encode(hashlib.sha256(str(server_id).encode()).digest())[:20].decode()
        )
        res = [(server.id, "server")]
        create = self._new_action("create_server", res)
        nxt = [self._new_action("start_server", res)] if start else []
        self._spawn(self._do_create(server, image, create, nxt, ACTION_FAULT.get()))
        return server, create, nxt, root_password

    async def _do_create(
        self, server: Server, image: Image, create: Action, nxt: list[Action], fault: ActionFault | None
    ) -> None:
        ok = await self._run_action(create, lambda: self.driver.create(server, image), fault)
        if not ok:
            server.status, server.locked = "off", False
            for a in nxt:
                a.fail("action_failed", "server creation failed")
            return
        if not nxt:
            server.status, server.locked = "off", False
            return
        server.status = "starting"
        if await self._run_action(nxt[0], lambda: self.driver.start(server), fault):
            server.status = "running"
        else:
            server.status = "off"
        server.locked = False

    def update_server(self, server_id: int, name: Any, labels: Any) -> Server:
        s = self.get_server(server_id)
        if name is not None:
            if not isinstance(name, str) or not _HOSTNAME.match(name):
                raise invalid_input("name", "must be a valid hostname (RFC 1123)")
            if any(o.name == name and o.id != server_id for o in self.servers.values()):
                raise APIError("uniqueness_error", "server name is already used", {"fields": [{"name": "name"}]})
        new_labels = validate_labels(labels) if labels is not None else None
        if name is not None:
            s.name = name
        if new_labels is not None:
            s.labels = new_labels
        return s

    def _lock(self, s: Server) -> None:
        if s.locked:
            raise APIError("locked", f"server {s.id} is locked by a running action")
        if s.status == "deleting":
            raise APIError("locked", f"server {s.id} is being deleted")
        s.locked = True

    def delete_server(self, server_id: int) -> Action:
        s = self.get_server(server_id)
        if s.protection_delete:
            raise APIError("protected", f"server {s.id} is protected against deletion")
        self._lock(s)
        previous, s.status = s.status, "deleting"
        action = self._new_action("delete_server", [(s.id, "server")])
        fault = ACTION_FAULT.get()

        async def run() -> None:
            if await self._run_action(action, lambda: self.driver.delete(s), fault):
                self.servers.pop(s.id, None)
            else:
                s.status, s.locked = previous, False

        self._spawn(run())
        return action

    def server_action(self, server_id: int, name: str, body: dict[str, Any]) -> tuple[Action, Image | None]:
        s = self.get_server(server_id)
        if name == "create_image":
            return self._create_image(s, body)
        handlers: dict[str, tuple[str, Callable[[Server], Awaitable[None]] | None]] = {
            "poweron": ("start_server", self._op_poweron),
            "poweroff": ("stop_server", self._op_poweroff),
            "shutdown": ("shutdown_server", self._op_shutdown),
            "reboot": ("reboot_server", self._op_reset),
            "reset": ("reset_server", self._op_reset),
        }
        if name not in handlers:
            raise APIError("not_found", f"server action '{name}' not found")
        command, op = handlers[name]
        self._lock(s)
        action = self._new_action(command, [(s.id, "server")])
        fault = ACTION_FAULT.get()
        previous = s.status
        if name == "poweroff" and s.status == "running":
            s.status = "stopping"
        elif name == "poweron" and s.status == "off":
            s.status = "starting"

        async def run() -> None:
            assert op is not None
            ok = await self._run_action(action, lambda: op(s), fault)
            s.locked = False
            if s.status in ("stopping", "starting"):
                # The power state changes when the action ends, not when the driver returns.
                s.status = {("stopping", True): "off", ("starting", True): "running"}.get((s.status, ok), previous)

        self._spawn(run())
        return action, None

    async def _op_poweron(self, s: Server) -> None:
        if s.status == "starting":
            await self.driver.start(s)

    async def _op_poweroff(self, s: Server) -> None:
        if s.status == "stopping":
            await self.driver.poweroff(s)

    async def _op_shutdown(self, s: Server) -> None:
        # Only the button press is part of the action; the guest powers off when it is ready
        # and reports it through the power-off callback. Until then the server stays running.
        if s.status == "running":
            await self.driver.acpi_shutdown(s)

    async def _op_reset(self, s: Server) -> None:
        if s.status == "running":
            await self.driver.reset(s)

    def _guest_powered_off(self, server_id: int) -> None:
        s = self.servers.get(server_id)
        if s is not None and s.status not in ("deleting",):
            s.status = "off"

    def _create_image(self, s: Server, body: dict[str, Any]) -> tuple[Action, Image]:
        description = body.get("description")
        if description is not None and not isinstance(description, str):
            raise invalid_input("description", "must be a string")
        image_type = body.get("type", "snapshot")
        if image_type not in ("snapshot", "backup"):
            raise invalid_input("type", "must be 'snapshot' or 'backup'")
        labels = validate_labels(body.get("labels"))
        self._lock(s)
        src = self.server_image(s)
        image = Image(
            id=self._next_id("image"),
            type=image_type,
            architecture=s.server_type.architecture,
            disk_size=float(s.server_type.disk),
            os_flavor=src.os_flavor if src else "unknown",
            os_version=src.os_version if src else None,
            description=description if description is not None else f"{s.name}-{rfc3339(utcnow())}",
            status="creating",
            labels=labels,
            created_from={"id": s.id, "name": s.name},
            bound_to=s.id if image_type == "backup" else None,
        )
        self.images[image.id] = image
        action = self._new_action("create_image", [(s.id, "server"), (image.id, "image")])
        fault = ACTION_FAULT.get()

        async def snapshot() -> None:
            result = await self.driver.snapshot(s, image.id)
            image.image_size = result.image_size_gb
            image.disk_path, image.kernel_path, image.initrd_path = (
                result.disk_path,
                result.kernel_path,
                result.initrd_path,
            )

        async def run() -> None:
            ok = await self._run_action(action, snapshot, fault)
            s.locked = False
            if ok and image.id in self.images:
                image.status = "available"
                self._save()
            elif image.id in self.images:
                del self.images[image.id]
                await self.driver.delete_image(image)

        self._spawn(run())
        return action, image

    # ------------------------------------------------------------------ images
    def update_image(self, image_id: int, body: dict[str, Any]) -> Image:
        img = self.get_image(image_id)
        if img.type == "system":
            raise APIError("forbidden", "system images cannot be modified", status=403)
        description = body.get("description")
        if description is not None and not isinstance(description, str):
            raise invalid_input("description", "must be a string")
        new_type = body.get("type")
        if new_type is not None and new_type != "snapshot":
            raise invalid_input("type", "can only be changed to 'snapshot'")
        labels = validate_labels(body["labels"]) if body.get("labels") is not None else None
        if description is not None:
            img.description = description
        if new_type is not None:
            img.type, img.bound_to = "snapshot", None
        if labels is not None:
            img.labels = labels
        self._save()
        return img

    async def delete_image(self, image_id: int) -> None:
        img = self.get_image(image_id)
        if img.type not in ("snapshot", "backup"):
            raise APIError("forbidden", "only snapshots and backups can be deleted", status=403)
        if img.protection_delete:
            raise APIError("protected", f"image {img.id} is protected against deletion")
        if img.status == "creating":
            raise APIError("locked", f"image {img.id} is still being created")
        del self.images[image_id]
        await self.driver.delete_image(img)
        self._save()

    # ------------------------------------------------------------------ admin
    def dump(self) -> dict[str, Any]:
        from .views import action_json, image_json, server_json, ssh_key_json

        return {
            "servers": [server_json(s, self.server_image(s)) for s in self.servers.values()],
            "images": [image_json(i) for i in self.images.values()],
            "ssh_keys": [ssh_key_json(k) for k in self.ssh_keys.values()],
            "actions": [action_json(a) for a in self.actions.values()],
            "machines": getattr(self.driver, "describe", lambda: {})(),
        }

    async def reset(self) -> None:
        """Forget every server, key, snapshot and action; system images stay."""
        await self.drain()
        for s in list(self.servers.values()):
            await self.driver.delete(s)
        self.servers.clear()
        for i in list(self.images.values()):
            if i.id not in self._system_image_ids:
                await self.driver.delete_image(i)
                del self.images[i.id]
        self.ssh_keys.clear()
        self.actions.clear()
        self.placement.clear()
        self._save()

    async def close(self) -> None:
        """Stop: running actions are abandoned, every machine and server disk goes away."""
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        for s in list(self.servers.values()):
            try:
                await self.driver.delete(s)
            except Exception:
                log.exception("could not delete server %s on close", s.id)
        self.servers.clear()
        for i in list(self.images.values()):
            if i.status != "available" and i.id not in self._system_image_ids:
                await self.driver.delete_image(i)
                del self.images[i.id]
        self._save()
        await self.driver.close()
