"""Servers: create (with its start), update, delete (``/servers``)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
from collections.abc import Iterable
from typing import Any

from ..catalog import DATACENTERS_BY_NAME, LOCATIONS_BY_NAME, SERVER_TYPES, SERVER_TYPES_BY_NAME
from ..errors import APIError, invalid_input
from ..labels import validate_labels
from ..models import Action, Image, Server
from .core import ACTION_FAULT, ActionFault, BackendCore

_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


class Servers(BackendCore):
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
