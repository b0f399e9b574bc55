"""``capi-image gc``: delete what crashed or killed builds left behind.

Targets servers, SSH keys and *unpublished* snapshots (no ``caph-image-name``) labelled
``created-by=capi-image`` and older than a threshold. The threshold keeps it safe to run next to
a build in progress (a nightly job), and every page of every list is read.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from hcloud.images import Image

from . import log as logmod
from .build import CREATED_BY
from .caph import CAPH_LABEL
from .cloud import Cloud, CloudError

log = logmod.get("capi-image.gc")
T = TypeVar("T")

_DURATION = re.compile(r"^(\d+)([smhd])$")


MAX_AGE = dt.timedelta(days=36500)


def parse_duration(text: str) -> dt.timedelta:
    m = _DURATION.match(text.strip())
    if not m:
        raise ValueError(f"'{text}' is not a duration like 90s, 30m, 2h or 1d")
    seconds = int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    if seconds > MAX_AGE.total_seconds():  # "now - age" must stay a date
        raise ValueError(f"'{text}' is longer than {MAX_AGE.days} days")
    return dt.timedelta(seconds=seconds)


def _deleter(fn: Callable[[T], Any], resource: T) -> Callable[[], Any]:
    return lambda: fn(resource)


@dataclass
class GcReport:
    deleted: list[str] = field(default_factory=list)
    spared: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def collect(cloud: Cloud, older_than: dt.timedelta, *, build_id: str | None = None, dry_run: bool = False) -> GcReport:
    client = cloud.client
    selector = f"created-by={CREATED_BY}" + (f",build-id={build_id}" if build_id else "")
    cutoff = dt.datetime.now(dt.UTC) - older_than
    report = GcReport()

    def old(created: dt.datetime | None) -> bool:
        return created is not None and created <= cutoff

    servers = cloud.call("list servers", lambda: client.servers.get_all(label_selector=selector))
    keys = cloud.call("list SSH keys", lambda: client.ssh_keys.get_all(label_selector=selector))
    images = cloud.call("list snapshots", lambda: client.images.get_all(label_selector=selector, type=["snapshot"]))

    for s in servers:
        what = f"server {s.id} ({s.name})"
        if not old(s.created):
            report.spared.append(f"{what}: younger than {older_than}")
            continue
        if dry_run:
            report.deleted.append(f"{what} (dry run)")
            continue
        try:
            action = cloud.call(f"delete {what}", _deleter(client.servers.delete, s))
            if action is not None and action.id is not None:
                cloud.wait_action(f"delete {what}", action.id, 600)
            report.deleted.append(what)
        except CloudError as e:
            if e.code == "not_found":
                report.deleted.append(what)
            else:
                report.failed.append(f"{what}: {e}")
    for k in keys:
        what = f"SSH key {k.id} ({k.name})"
        if not old(k.created):
            report.spared.append(f"{what}: younger than {older_than}")
            continue
        if not dry_run:
            try:
                cloud.call(f"delete {what}", _deleter(client.ssh_keys.delete, k))
            except CloudError as e:
                if e.code != "not_found":
                    report.failed.append(f"{what}: {e}")
                    continue
        report.deleted.append(what + (" (dry run)" if dry_run else ""))
    for i in images:
        what = f"snapshot {i.id} ({i.description})"
        labels = i.labels or {}
        if CAPH_LABEL in labels:
            report.spared.append(f"{what}: published as {labels[CAPH_LABEL]}")
            continue
        if not old(i.created):
            report.spared.append(f"{what}: younger than {older_than}")
            continue
        if not dry_run:
            try:
                cloud.call(
                    f"delete {what}",
                    _deleter(client.images.delete, Image(id=i.id)),
                )
            except CloudError as e:
                if e.code != "not_found":
                    report.failed.append(f"{what}: {e}")
                    continue
        report.deleted.append(what + (" (dry run)" if dry_run else ""))
    for line in report.deleted:
        log.info("gc.deleted", what=line)
    for line in report.spared:
        log.info("gc.spared", what=line)
    for line in report.failed:
        log.error("gc.failed", what=line)
    return report
