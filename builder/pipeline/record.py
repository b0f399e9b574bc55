"""The build manifest: one JSON file per build, written on every exit path, secrets scrubbed.

``capi-image manifests --from``, ``summary``, the bench and CI read it; docs/commands.md lists
its fields.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from .. import log as logmod
from ..caph import CAPH_LABEL
from ..cloud import RequestCounter
from ..config import ProjectConfig
from ..placement import Placements
from ..ssh import StepTiming
from .preflight import ImageSpec


@dataclass
class BuildResult:
    build_id: str
    ok: bool
    image_id: int | None = None
    image_name: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    # A create never got its answer: cleanup watched for it, but it may still appear later.
    unanswered_create: bool = False
    # build --skip-unchanged found the newest published image of the family holds the same:
    # image_id/image_name are that image's, nothing new was published
    unchanged: bool = False


def late_create_note(gc_command: str) -> str:
    return f"an API create never got its answer and may still appear after cleanup; `{gc_command}` removes it"


@dataclass
class Measurements:
    """What the build measured along the way, for the manifest and the bench."""

    phases: dict[str, float] = field(default_factory=dict)
    # Seconds from the create call until SSH answered, per server role: a snapshot that boots
    # much slower than its base image delays every node CAPH creates from it.
    ssh_ready_seconds: dict[str, float] = field(default_factory=dict)
    root_used_bytes: int | None = None
    image_size_gb: float | None = None
    steps: list[StepTiming] = field(default_factory=list)
    sbom: dict[str, Any] | None = None  # SbomRecord.as_dict()
    provenance: dict[str, Any] | None = None  # path, signed


def manifest_document(
    *,
    config: ProjectConfig,
    build_id: str,
    started: dt.datetime,
    result: BuildResult,
    cleanup_error: BaseException | None,
    spec: ImageSpec | None,
    placements: Placements | None,
    measured: Measurements,
    counter: RequestCounter,
    architecture: str,
    counter_unanswered: list[str] | None = None,
) -> dict[str, Any]:
    mirror = spec.local_mirror if spec else None
    current = placements.current if placements else None
    manifest: dict[str, Any] = {
        "result": "success" if result.ok else "failure",
        "error": result.error,
        "cleanup": (
            f"incomplete: {logmod.scrub(str(cleanup_error))}"
            if cleanup_error is not None
            else f"complete; {late_create_note(config.gc_command(build_id))}"
            if result.unanswered_create
            else "complete"
        ),
        "unanswered_creates": list(counter_unanswered or []),
        "build_id": build_id,
        "project": config.name,
        "tool_version": __version__,
        "started": started.isoformat(),
        "snapshot_id": result.image_id,
        "description": spec.name if result.ok and spec else None,
        "caph_image_name": result.image_name,
        "labels": result.labels,
        "unchanged": result.unchanged,
        "sbom": measured.sbom,
        "provenance": measured.provenance,
        "image_size_gb": measured.image_size_gb,
        "root_used_bytes": measured.root_used_bytes,
        "versions": spec.versions.model_dump() if spec else None,
        "os": config.os,
        "architecture": spec.architecture if spec else architecture,
        "server_type": current.server_type if current else config.server_type,
        "location": current.location if current else config.location,
        "placement": {"tried": placements.tried, "warnings": placements.warnings} if placements else None,
        "base_image": config.base_image,
        "phases": measured.phases,
        "ssh_ready_seconds": measured.ssh_ready_seconds,
        "local_mirror": {"url": mirror.guest_url, "standins": list(mirror.standins)} if mirror else None,
        "steps": [t.record() for t in measured.steps],
        "api_requests": counter.total,
        "api_requests_by_call": dict(sorted(counter.by_call.items())),
    }
    return logmod.scrub(manifest)  # type: ignore[no-any-return]


def result_line(result: BuildResult, manifest: Path) -> dict[str, Any]:
    """The build's one JSON line on stdout: what was published, where the manifest is."""
    return {
        "snapshot_id": result.image_id,
        CAPH_LABEL: result.image_name,
        "manifest": str(manifest),
        "unanswered_create": result.unanswered_create,
        "unchanged": result.unchanged,
    }


def write(path: Path, manifest: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=2) + "\n")


__all__ = ["BuildResult", "Measurements", "late_create_note", "manifest_document", "result_line", "write"]
