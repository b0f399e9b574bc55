"""The state every resource operation shares, and listing by label (gc, prune, ``images`` and
cleanup's search all list through here, with one selector builder)."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping
from typing import Any, Literal

from . import log as logmod
from .cloud import Cloud
from .config import Timeouts

Kind = Literal["servers", "SSH keys", "snapshots"]
log = logmod.get("capi-image.resources")


def label_selector(labels: Mapping[str, str]) -> str:
    """The API's label selector for resources carrying all of ``labels``. Refuses none: an empty
    selector matches every resource of the project — what a cleanup must never act on."""
    if not labels:
        raise ValueError("an empty label selector would match every resource of the project")
    return ",".join(f"{k}={v}" for k, v in labels.items())


class ResourceBase:
    """A project's API, the timeouts, and the labels that select what this tool made."""

    def __init__(self, cloud: Cloud, timeouts: Timeouts, labels: dict[str, str] | None = None) -> None:
        self.cloud = cloud
        self.timeouts = timeouts
        self.labels = dict(labels or {})
        # Set before the first create call: until then nothing can exist, and a failure (a bad
        # token in preflight) needs no label search.
        self.attempted_create = False
        self.in_flight = False
        self.log = log.bind(build_id=self.labels["build-id"]) if "build-id" in self.labels else log

    @property
    def selector(self) -> str:
        return label_selector(self.labels)

    def role_selector(self, role: str) -> str:
        return f"{self.selector},role={role}"

    # ------------------------------------------------------------------ list
    def list(self, kind: Kind, *, call: str = "") -> list[Any]:
        """Every servers / SSH keys / snapshots resource carrying ``labels`` (every page), for
        gc, prune, ``images`` and cleanup alike. ``call`` names the request in errors."""
        client, selector = self.cloud.client, self.selector
        listers: dict[str, Callable[[], list[Any]]] = {
            "servers": lambda: client.servers.get_all(label_selector=selector),
            "SSH keys": lambda: client.ssh_keys.get_all(label_selector=selector),
            "snapshots": lambda: client.images.get_all(label_selector=selector, type=["snapshot"]),
        }
        return list(self.cloud.call(call or f"list {kind}", listers[kind]))

    def find(self, kind: Kind) -> builtins.list[int]:
        """Ids of ``list(kind)`` (cleanup's search by label)."""
        return [r.id for r in self.list(kind, call=f"find {kind}") if r.id is not None]

    def every_server(self) -> builtins.list[Any]:
        """Every server of the project, whoever made it: prune must see which images any server
        (a node CAPH made, too) was booted from. The one listing without a label selector."""
        return list(self.cloud.call("list servers", lambda: self.cloud.client.servers.get_all()))


__all__ = ["Kind", "ResourceBase", "label_selector"]
