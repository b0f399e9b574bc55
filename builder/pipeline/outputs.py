"""The files a build leaves beside its manifest: the SBOM of what the build server holds (its
digests label the snapshot; with ``--skip-unchanged`` it decides whether anything is
snapshotted) and the in-toto provenance of the published image. Phase functions of ``Build``
(``phases.STEPS`` names them)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from .. import __version__, provenance
from ..caph import CAPH_LABEL
from ..sbom import document, inventory
from ..sbom import record as sbom_record

if TYPE_CHECKING:
    from .build import Build


def take_sbom(b: Build) -> None:
    """What the node holds, as a CycloneDX document beside the manifest; its digests label
    the snapshot. With ``skip_unchanged``: the newest published image of the family that
    holds the same (then nothing is snapshotted or published)."""
    assert b.session is not None
    output = b.session.run(inventory.COMMAND, step="sbom", timeout=b.config.timeouts.step)
    versions = {k: str(v) for k, v in b.image.versions.model_dump().items() if v is not None}
    found = sbom_record.write(
        output, plan=b.image.plan, versions=versions, path=sbom_record.sbom_path(b.manifest_path),
        image_name=b.image.name, build_id=b.build_id, created=b.started, tool_version=__version__,
    )  # fmt: skip
    b.measured.sbom = found.as_dict()
    b.spec = dataclasses.replace(b.image, labels=MappingProxyType({**b.image.labels, **found.labels}))
    b.log.info("sbom.written", path=str(found.path), packages=found.packages, content=found.content_sha256[:12])
    if b.skip_unchanged:
        current = sbom_record.current_image(b.cloud, b.config.labels, dict(b.image.labels))
        content = (current.labels or {}).get(document.LABEL_CONTENT) if current is not None else None
        if current is not None:  # what a rollout diffs against (the nightly's pull request)
            labels = current.labels or {}
            b.measured.sbom["compared_with"] = {
                "snapshot_id": current.id, "caph_image_name": labels.get(CAPH_LABEL), "sbom_sha256": labels.get(document.LABEL_FILE),
            }  # fmt: skip
        if current is not None and content == found.labels[document.LABEL_CONTENT]:
            b.current = current
            b.log.info("image.unchanged", image_id=current.id, caph_image_name=current.labels[CAPH_LABEL])


def write_provenance(b: Build) -> None:
    """The in-toto statement of the published snapshot, beside the manifest."""
    if b.measured.sbom is None:
        return
    key = b.config.provenance_key_path()
    doc = provenance.statement(
        subject_name=Path(b.measured.sbom["path"]).name, subject_sha256=b.measured.sbom["sha256"],
        image={"snapshot_id": b.tracked.image_id, CAPH_LABEL: b.image.name},
        base_image={"id": b.image.base_image_id, "name": b.config.base_image},
        var_file=b.config.versions_path(), plan=b.image.plan,
        project={"project": b.config.name, "os": b.config.os, "recipe": b.config.recipe,
                 "architecture": b.image.architecture, "image_name": b.config.image_name},
        builder_id=f"capi-image@{__version__}", build_id=b.build_id, started=b.started,
        finished=dt.datetime.now(dt.UTC).replace(microsecond=0),
    )  # fmt: skip
    path = provenance.provenance_path(b.manifest_path)
    path.write_text(json.dumps(provenance.envelope(doc, key), sort_keys=True) + "\n", encoding="utf-8")
    b.measured.provenance = {"path": str(path), "signed": key is not None}
