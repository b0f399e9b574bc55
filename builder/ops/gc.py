"""``capi-image gc``: delete what crashed or killed builds left behind.

Targets servers, SSH keys and *unpublished* snapshots (no ``caph-image-name``) labelled
``created-by=capi-image`` and older than a threshold. The threshold keeps it safe to run next to
a build in progress (a nightly job), and every page of every list is read.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from .. import log as logmod
from ..caph import CAPH_LABEL
from ..cloud import Cloud
from ..config import Timeouts
from ..errors import CloudError, DeadlineError, InputError
from ..resources import CREATED_BY, Resources

log = logmod.get("capi-image.gc")

_DURATION = re.compile(r"^(\d+)([smhd])$")


MAX_AGE = dt.timedelta(days=36500)


def parse_duration(text: str) -> dt.timedelta:
    m = _DURATION.match(text.strip())
    if not m:
        raise InputError(f"'{text}' is not a duration like 90s, 30m, 2h or 1d")
    seconds = int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    if seconds > MAX_AGE.total_seconds():  # "now - age" must stay a date
        raise InputError(f"'{text}' is longer than {MAX_AGE.days} days")
    return dt.timedelta(seconds=seconds)


@dataclass
class GcReport:
    deleted: list[str] = field(default_factory=list)
    spared: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def collect(
    cloud: Cloud,
    older_than: dt.timedelta,
    *,
    build_id: str | None = None,
    dry_run: bool = False,
    timeouts: Timeouts | None = None,
) -> GcReport:
    labels = {"created-by": CREATED_BY, **({"build-id": build_id} if build_id else {})}
    res = Resources(cloud, timeouts or Timeouts(), labels)
    cutoff = dt.datetime.now(dt.UTC) - older_than
    report = GcReport()

    servers, keys, images = res.list("servers"), res.list("SSH keys"), res.list("snapshots")

    def sweep(what: str, created: dt.datetime | None, delete: Callable[[], None], spare: str | None = None) -> None:
        if spare is not None:
            report.spared.append(f"{what}: {spare}")
        elif created is None or created > cutoff:
            report.spared.append(f"{what}: younger than {older_than}")
        elif dry_run:
            report.deleted.append(f"{what} (dry run)")
        else:
            try:
                delete()  # waits out locks, confirms the resource is gone
                report.deleted.append(what)
            except (CloudError, DeadlineError) as e:
                report.failed.append(f"{what}: {e}")

    # Servers first: an SSH key or snapshot can still be in use by one.
    for s in servers:
        assert s.id is not None
        sweep(f"server {s.id} ({s.name})", s.created, functools.partial(res.delete_server, s.id))
    for k in keys:
        assert k.id is not None
        sweep(f"SSH key {k.id} ({k.name})", k.created, functools.partial(res.delete_key, k.id))
    for i in images:
        assert i.id is not None
        published = (i.labels or {}).get(CAPH_LABEL)
        sweep(
            f"snapshot {i.id} ({i.description})",
            i.created,
            functools.partial(res.delete_image, i.id),
            spare=f"published as {published}" if published else None,
        )
    for line in report.deleted:
        log.info("gc.deleted", what=line)
    for line in report.spared:
        log.info("gc.spared", what=line)
    for line in report.failed:
        log.error("gc.failed", what=line)
    return report
