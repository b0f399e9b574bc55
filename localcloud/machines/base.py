"""The contract between the API backend and a machine driver."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..models import Image, Server


@dataclass(frozen=True)
class SystemImage:
    """A bootable image a driver offers, registered as a ``system`` image."""

    name: str
    architecture: str
    os_flavor: str
    os_version: str
    description: str
    disk_size: float
    disk_path: Path | None = None
    kernel_path: Path | None = None
    initrd_path: Path | None = None


@dataclass(frozen=True)
class SnapshotResult:
    image_size_gb: float
    disk_path: Path | None = None
    kernel_path: Path | None = None
    initrd_path: Path | None = None


PowerOffCallback = Callable[[int], None]


class MachineDriver(Protocol):
    kind: str

    def system_images(self) -> list[SystemImage]: ...

    def set_power_off_callback(self, cb: PowerOffCallback) -> None:
        """``cb(server_id)`` is called whenever a guest powers itself off."""

    async def create(self, server: Server, image: Image) -> None:
        """Prepare the disk and first-boot data; the machine stays off."""

    async def start(self, server: Server) -> None:
        """Power on; return once the machine is powered on (not booted)."""

    async def acpi_shutdown(self, server: Server) -> None:
        """Press the ACPI power button; return at once, the guest decides when it is off."""

    async def poweroff(self, server: Server) -> None:
        """Cut power; return once the machine is off."""

    async def reset(self, server: Server) -> None: ...

    async def snapshot(self, server: Server, image_id: int) -> SnapshotResult:
        """Flatten the server's disk into a standalone image."""

    async def delete_image(self, image: Image) -> None: ...

    async def delete(self, server: Server) -> None:
        """Stop the machine and remove everything it owns."""

    async def close(self) -> None:
        """Stop every machine; called when localcloud shuts down."""
