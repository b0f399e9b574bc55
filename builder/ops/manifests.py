"""Lift a published snapshot into Cluster API manifests (``capi-image manifests``).

CAPH's HCloudMachineTemplate is immutable, so a new image means a new template under a new name,
and repointing the KubeadmControlPlane / MachineDeployment ``infrastructureRef`` at it is what
rolls the machines (CAPI book, "updating machine templates").

Existing files are edited by splicing only the changed scalars into the original text, at the
positions ruamel.yaml's round-trip parser reports: comments, key order, quoting and indentation
stay byte-for-byte, which a dump of the parsed tree cannot promise. The new template is a copy
of the old one's text (sshKeys, placement group, network settings survive) with its name,
imageName and, if asked, type spliced. Before anything is written the edited text is parsed
again and compared with the expected documents, so an edit can never change more than the refs.

The pieces live in ``builder/rollout/``: ``model`` (the image, names), ``sources`` (files,
refs, templates), ``splicing`` (in-place scalar edits), ``plan`` (what changes: templates and
refs, ClusterClass rotation, topology variables via ``topology``), ``resolve`` (the API check),
``output`` (edited files, kustomize). This module is their public face.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from ..rollout.component import keep_earlier_templates, kustomize_component, write_component
from ..rollout.model import ROLES, ImageRef, ManifestError, Role, image_from_build_manifest, new_template_name
from ..rollout.output import edited_files
from ..rollout.plan import Rollout, fresh_templates, plan_rollout
from ..rollout.resolve import check_name_exists, check_resolution
from ..rollout.sources import Source, load_sources

__all__ = [
    "ROLES",
    "ImageRef",
    "ManifestError",
    "Role",
    "Rollout",
    "check_name_exists",
    "check_resolution",
    "edited_files",
    "fresh_templates",
    "image_from_build_manifest",
    "keep_earlier_templates",
    "kustomize_component",
    "load_sources",
    "new_template_name",
    "plan_rollout",
    "summary",
    "write_outputs",
]


def write_outputs(
    rollout: Rollout, sources: list[Source], *, kustomize: Path | None, dry_run: bool
) -> tuple[list[str], str]:
    """Write the rollout: a kustomize Component into ``kustomize``, or the edited cluster files
    in place; with ``dry_run`` write nothing. Returns the paths written and the unified diff
    (dry run only)."""
    written: list[str] = []
    diff: list[str] = []
    if kustomize:
        return write_component(rollout, kustomize), ""
    edited = edited_files(rollout)
    for src in sources:
        if src.path not in edited:
            continue
        if dry_run:
            diff += difflib.unified_diff(
                src.text.splitlines(True), edited[src.path].splitlines(True), str(src.path), str(src.path)
            )
        else:
            src.path.write_text(edited[src.path])
            written.append(str(src.path))
    return written, "".join(diff)


def summary(rollout: Rollout, snapshot_id: int | None, written: list[str]) -> dict[str, object]:
    """What ``capi-image manifests`` prints as JSON after writing."""
    return {
        "caph-image-name": rollout.image.name,
        "snapshot_id": snapshot_id,
        "HCLOUD_IMAGE": str(snapshot_id),
        "templates": [{"name": t.name, "role": t.role, "type": t.server_type} for t in rollout.templates],
        "updated": [f"{c.site.kind} {c.site.name}: {c.site.template} -> {c.new}" for c in rollout.changes]
        + [f"{v.site.what}: {v.site.old} -> {v.new}" for v in rollout.variables],
        "written": written,
        "notes": rollout.notes,
    }
