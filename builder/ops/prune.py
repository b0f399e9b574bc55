"""``capi-image prune``: keep the newest N published snapshots per image family.

A family is what one nightly job rebuilds: same OS, architecture and Kubernetes minor, within
the project's own labels (``created-by=capi-image`` plus ``labels:`` of the project config), so
one project's prune never touches another's images. A snapshot is spared, with the reason said,
when it is among the newest N, not yet available, the image of an existing server (CAPH
resolves imageName again for every new machine, and a running node's image is how a rollback
boots), or named — by its caph-image-name or its id, anywhere, not only as ``imageName`` — in
the files given with ``--in-use`` (see ``inuse``: topology variables, overrides, env values).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Literal

from hcloud.images import BoundImage

from .. import log as logmod
from ..caph import CAPH_LABEL
from ..cloud import Cloud
from ..config import ProjectConfig, Timeouts
from ..errors import CloudError, DeadlineError, InputError
from ..resources import CREATED_BY, Resources
from .inuse import References

log = logmod.get("capi-image.prune")


@dataclass
class Decision:
    image_id: int
    caph_image_name: str
    family: str
    created: dt.datetime | None
    action: Literal["keep", "delete"]
    reason: str
    outcome: str = ""  # deleted / would delete / failed: …

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.image_id,
            CAPH_LABEL: self.caph_image_name,
            "family": self.family,
            "created": self.created.isoformat() if self.created else None,
            "action": self.action,
            "reason": self.reason,
            "outcome": self.outcome,
        }


@dataclass
class PruneReport:
    decisions: list[Decision] = field(default_factory=list)

    @property
    def failed(self) -> list[Decision]:
        return [d for d in self.decisions if d.outcome.startswith("failed")]


def family_of(labels: dict[str, str]) -> str:
    """OS/arch/k8s minor; images of a partial recipe form a family of their own, so test builds
    never push production images out of retention."""
    version = labels.get("kubernetes_version", "?")
    minor = ".".join(version.split(".")[:2])
    recipe = labels.get("recipe", "full")
    return f"{labels.get('os', '?')}/{labels.get('arch', '?')}/k8s-{minor}" + ("" if recipe == "full" else f"/{recipe}")


def plan(cloud: Cloud, config: ProjectConfig, keep: int, in_use: References | None = None) -> PruneReport:
    in_use = in_use or References()
    if keep < 1:
        raise InputError("--keep must be at least 1: prune never deletes a family's newest image")
    res = Resources(cloud, config.timeouts, {"created-by": CREATED_BY, **dict(sorted(config.labels.items()))})
    images: list[BoundImage] = res.list("snapshots")
    servers = res.every_server()
    used_by: dict[int, list[str]] = defaultdict(list)
    for s in servers:
        if s.image is not None and s.image.id is not None:
            used_by[s.image.id].append(f"{s.name} ({s.id})")

    families: dict[str, list[BoundImage]] = defaultdict(list)
    for image in images:
        labels = image.labels or {}
        if CAPH_LABEL in labels:  # unpublished snapshots are gc's business
            families[family_of(labels)].append(image)
    report = PruneReport()
    for family in sorted(families):
        members = sorted(
            families[family], key=lambda i: (i.created or dt.datetime.min.replace(tzinfo=dt.UTC), i.id), reverse=True
        )
        for rank, image in enumerate(members):
            assert image.id is not None
            name = (image.labels or {})[CAPH_LABEL]
            if rank < keep:
                action, reason = "keep", f"newest {keep} of {family} (#{rank + 1})"
            elif image.status != "available":
                action, reason = "keep", f"status {image.status}"
            elif image.id in used_by:
                action, reason = "keep", "image of server(s) " + ", ".join(used_by[image.id])
            elif (where := in_use.find(name, str(image.id))) is not None:
                action, reason = "keep", f"named in {where}"
            else:
                action, reason = "delete", f"older than the newest {keep} of {family}"
            report.decisions.append(Decision(image.id, name, family, image.created, action, reason))  # type: ignore[arg-type]
    return report


def execute(cloud: Cloud, report: PruneReport, *, yes: bool, timeouts: Timeouts | None = None) -> PruneReport:
    res = Resources(cloud, timeouts or Timeouts())
    for d in report.decisions:
        if d.action != "delete":
            d.outcome = "kept"
            continue
        if not yes:
            d.outcome = "would delete (dry run; --yes deletes)"
            continue
        try:
            res.delete_image(d.image_id)  # not_found counts as deleted; waits out a lock; confirms
            d.outcome = "deleted"
        except (CloudError, DeadlineError) as e:
            d.outcome = f"failed: {e}"
        log.info("prune.delete", image_id=d.image_id, caph_image_name=d.caph_image_name, outcome=d.outcome)
    return report
