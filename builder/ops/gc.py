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

import pytimeparse2

from .. import log as logmod
from ..caph import CAPH_LABEL
from ..cloud import Cloud
from ..config import Timeouts
from ..errors import CloudError, DeadlineError, InputError
from ..resources import CREATED_BY, Resources

log = logmod.get("capi-image.gc")

MAX_AGE = dt.timedelta(days=36500)


def parse_duration(text: str) -> dt.timedelta:
    """A duration as people write it (90s, 30m, 2h, 1d12h, 1.5h, "2 hours"; pytimeparse2)."""
    seconds = pytimeparse2.parse(text.strip())
    if seconds is None and re.fullmatch(r"\d{6,}\s*[a-z]+", text.strip()):
        # pytimeparse2 answers None when the number overflows its arithmetic: a huge age
        raise InputError(f"'{text}' is longer than {MAX_AGE.days} days")
    if seconds is None or isinstance(seconds, dt.timedelta) or seconds < 0:
        raise InputError(f"'{text}' is not a duration like 90s, 30m, 2h, 1d or 1d12h")
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
