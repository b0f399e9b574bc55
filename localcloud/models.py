"""Plain domain objects held by the backend. JSON shapes live in ``views.py``."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .catalog import Location, ServerType


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def rfc3339(t: dt.datetime | None) -> str | None:
    # Always with seconds and an explicit offset: hcloud-go parses with time.RFC3339.
    return None if t is None else t.strftime("%Y-%m-%dT%H:%M:%S+00:00")


@dataclass
class Action:
    id: int
    command: str
    resources: list[tuple[int, str]]
    duration: float
    started: dt.datetime = field(default_factory=utcnow)
    status: str = "running"
    finished: dt.datetime | None = None
    error: dict[str, str] | None = None
    t0: float = field(default_factory=time.monotonic)

    @property
    def progress(self) -> int:
        if self.status != "running":
            return 100
        if self.duration <= 0:
            return 0
        return min(99, int(100 * (time.monotonic() - self.t0) / self.duration))

    def succeed(self) -> None:
        self.status, self.finished = "success", utcnow()

    def fail(self, code: str, message: str) -> None:
        self.status, self.finished = "error", utcnow()
        self.error = {"code": code, "message": message}


@dataclass
class SSHKey:
    id: int
    name: str
    fingerprint: str
    public_key: str
    labels: dict[str, str]
    created: dt.datetime = field(default_factory=utcnow)


@dataclass
class Image:
    id: int
    type: str  # system | snapshot | backup
    architecture: str  # x86 | arm
    disk_size: float
    os_flavor: str
    os_version: str | None
    name: str | None = None
    description: str = ""
    status: str = "available"
    image_size: float | None = None
    labels: dict[str, str] = field(default_factory=dict)
    created: dt.datetime = field(default_factory=utcnow)
    created_from: dict[str, Any] | None = None
    bound_to: int | None = None
    protection_delete: bool = False
    deprecated: dt.datetime | None = None
    # Where the machine backend keeps the bits; never shown over the API.
    disk_path: Path | None = None
    kernel_path: Path | None = None
    initrd_path: Path | None = None


@dataclass
class Server:
    id: int
    name: str
    server_type: ServerType
    location: Location
    image_id: int | None
    ipv4: str
    ipv6_net: str
    labels: dict[str, str]
    ssh_keys: list[str]  # public keys, as given at creation
    user_data: str | None
    status: str = "initializing"
    locked: bool = False
    created: dt.datetime = field(default_factory=utcnow)
    protection_delete: bool = False
    protection_rebuild: bool = False
