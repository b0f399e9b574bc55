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
class Item:
    """One resource gc looked at: ``action`` is deleted, would delete (dry run), spared or failed."""

    kind: str  # server, SSH key, snapshot
    id: int
    name: str
    action: str
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "id": self.id, "name": self.name, "action": self.action, "reason": self.reason}

    def __str__(self) -> str:
        return f"{self.kind} {self.id} ({self.name}): {self.action}, {self.reason}"


@dataclass
class GcReport:
    items: list[Item] = field(default_factory=list)

    def having(self, action: str) -> list[Item]:
        return [i for i in self.items if i.action == action]

    @property
    def deleted(self) -> list[Item]:
        return self.having("deleted")

    @property
    def failed(self) -> list[Item]:
        return self.having("failed")


def collect(
    cloud: Cloud,
    older_than: dt.timedelta,
    *,
    labels: dict[str, str] | None = None,
    build_id: str | None = None,
    dry_run: bool = False,
    timeouts: Timeouts | None = None,
) -> GcReport:
    """What builds of the project (its ``labels``) left, older than ``older_than``: deleted, or
    with ``dry_run`` only listed."""
    scope = {**(labels or {}), "created-by": CREATED_BY, **({"build-id": build_id} if build_id else {})}
    res = Resources(cloud, timeouts or Timeouts(), scope)
    cutoff = dt.datetime.now(dt.UTC) - older_than
    report = GcReport()

    servers, keys, images = res.list("servers"), res.list("SSH keys"), res.list("snapshots")

    def sweep(
        kind: str,
        rid: int,
        name: str,
        created: dt.datetime | None,
        delete: Callable[[], None],
        spare: str | None = None,
    ) -> None:
        def add(action: str, reason: str) -> None:
            report.items.append(Item(kind, rid, name, action, reason))

        if spare is not None:
            add("spared", spare)
        elif created is None or created > cutoff:
            add("spared", f"younger than {older_than}")
        elif dry_run:
            add("would delete", f"older than {older_than}")
        else:
            try:
                delete()  # waits out locks, confirms the resource is gone
                add("deleted", f"older than {older_than}")
            except (CloudError, DeadlineError) as e:
                add("failed", str(e))

    # Servers first: an SSH key or snapshot can still be in use by one.
    for s in servers:
        assert s.id is not None
        sweep("server", s.id, str(s.name), s.created, functools.partial(res.delete_server, s.id))
    for k in keys:
        assert k.id is not None
        sweep("SSH key", k.id, str(k.name), k.created, functools.partial(res.delete_key, k.id))
    for i in images:
        assert i.id is not None
        published = (i.labels or {}).get(CAPH_LABEL)
        sweep(
            "snapshot",
            i.id,
            str(i.description),
            i.created,
            functools.partial(res.delete_image, i.id),
            spare=f"published as {published}" if published else None,
        )
    for item in report.items:
        (log.error if item.action == "failed" else log.info)("gc." + item.action.replace(" ", "_"), what=str(item))
    return report
