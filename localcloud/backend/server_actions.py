"""Server actions (``/servers/{id}/actions/…``): power, shutdown, reset and create_image."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import APIError, invalid_input
from ..labels import validate_labels
from ..models import Action, Image, Server, rfc3339, utcnow
from .core import ACTION_FAULT, BackendCore


class ServerActions(BackendCore):
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
