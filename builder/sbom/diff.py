"""What changed between two images: packages added, removed, upgraded and downgraded (Debian's
version ordering, python-debian), binaries and pre-pulled images changed, labels changed.

Either side is a build manifest (the SBOM it names), a CycloneDX SBOM, or a snapshot — by id
or caph-image-name — whose SBOM is found by its ``sbom-sha256`` label among the documents in
``--sbom-dir`` (a snapshot found in the cloud leads back to its SBOM)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from debian.debian_support import version_compare

from . import document

Versions = dict[str, str]


@dataclass
class Side:
    """One image as the diff sees it."""

    name: str
    packages: Versions = field(default_factory=dict)  # name[:arch] -> version
    binaries: Versions = field(default_factory=dict)  # path -> sha256
    images: Versions = field(default_factory=dict)  # ref -> digest
    labels: dict[str, str] = field(default_factory=dict)


def side_from_sbom(data: dict[str, Any], name: str, labels: dict[str, str] | None = None) -> Side:
    side = Side(name, labels=dict(labels or {}))
    for c in data.get("components", []):
        kind = c.get("type")
        if kind == "library" and str(c.get("purl", "")).startswith("pkg:deb/"):
            side.packages[c["name"]] = c.get("version", "")
        elif kind == "file":
            sha = next((h["content"] for h in c.get("hashes", []) if h.get("alg") == "SHA-256"), "")
            side.binaries[c["name"]] = sha
        elif kind == "container":
            side.images[c["name"]] = c.get("version", "")
    return side


def load_side(spec: str, *, sbom_dir: Path, snapshot: Callable[[str], tuple[str, dict[str, str]]] | None) -> Side:
    """``spec``: a build manifest or SBOM file, else a snapshot id or caph-image-name (looked up
    with ``snapshot``, which returns its name and labels)."""
    path = Path(spec)
    if path.is_file():
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if text.lstrip().startswith("{") else None
        if isinstance(data, dict) and data.get("bomFormat") == "CycloneDX":
            return side_from_sbom(document.load(text, spec), _image_name(data) or path.name)
        if isinstance(data, dict) and "build_id" in data:
            sbom = (data.get("sbom") or {}).get("path")
            if not sbom:
                raise document.SbomError(
                    f"build manifest {spec} names no SBOM (built before SBOMs, or it failed early)"
                )
            # as written (from the build's working directory), else beside the manifest
            candidates = [Path(sbom), path.parent / Path(sbom).name]
            sbom_path = next((c for c in candidates if c.is_file()), candidates[-1])
            sbom_text = sbom_path.read_text(encoding="utf-8")
            name = data.get("caph_image_name") or data.get("description") or path.name
            return side_from_sbom(document.load(sbom_text, str(sbom_path)), str(name), data.get("labels") or {})
        raise document.SbomError(f"{spec} is neither a build manifest nor a CycloneDX SBOM")
    if snapshot is None:
        raise document.SbomError(f"{spec} is not a file; to diff a snapshot, give --project")
    name, labels = snapshot(spec)
    wanted = labels.get(document.LABEL_FILE)
    if not wanted:
        raise document.SbomError(f"snapshot {spec} ({name}) has no {document.LABEL_FILE} label: built before SBOMs")
    for candidate in sorted(sbom_dir.glob("*.cdx.json")):
        text = candidate.read_text(encoding="utf-8")
        if document.file_digest(text).startswith(wanted):
            return side_from_sbom(document.load(text, str(candidate)), name, labels)
    raise document.SbomError(
        f"the SBOM of snapshot {spec} ({name}, {document.LABEL_FILE}={wanted}) is not in {sbom_dir}: "
        "give the directory holding the build's *.cdx.json (--sbom-dir)"
    )


def _image_name(data: dict[str, Any]) -> str | None:
    component = (data.get("metadata") or {}).get("component") or {}
    return component.get("name")


@dataclass
class Change:
    kind: str  # package, binary, image, label
    name: str
    change: str  # added, removed, upgraded, downgraded, changed
    old: str | None
    new: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "change": self.change, "old": self.old, "new": self.new}


# labels that differ between any two builds: not a change of the image's content
VOLATILE_LABELS = frozenset(
    {
        "build-id", "build_date", "build_timestamp", "creationTimestamp", "caph-image-name",
        document.LABEL_FILE, document.LABEL_CONTENT,
    }
)  # fmt: skip


def compare(old: Side, new: Side) -> list[Change]:
    changes: list[Change] = []
    for name in sorted(old.packages.keys() | new.packages.keys()):
        a, b = old.packages.get(name), new.packages.get(name)
        if a == b:
            continue
        if a is None or b is None:
            changes.append(Change("package", name, "added" if a is None else "removed", a, b))
        else:
            changes.append(Change("package", name, "upgraded" if version_compare(b, a) > 0 else "downgraded", a, b))
    for kind, a_map, b_map in (("binary", old.binaries, new.binaries), ("image", old.images, new.images)):
        for name in sorted(a_map.keys() | b_map.keys()):
            a, b = a_map.get(name), b_map.get(name)
            if a != b:
                change = "added" if a is None else "removed" if b is None else "changed"
                changes.append(Change(kind, name, change, a, b))
    if old.labels and new.labels:
        for name in sorted((old.labels.keys() | new.labels.keys()) - VOLATILE_LABELS):
            a, b = old.labels.get(name), new.labels.get(name)
            if a != b:
                changes.append(
                    Change("label", name, "added" if a is None else "removed" if b is None else "changed", a, b)
                )
    return changes


def markdown(old: Side, new: Side, changes: list[Change]) -> str:
    """For a pull request body or a job summary."""
    lines = [f"### `{old.name}` → `{new.name}`", ""]
    if not changes:
        return "\n".join([*lines, "No change: the same packages, binaries and images.", ""])
    counts = {
        c: sum(1 for x in changes if x.change == c) for c in ("added", "removed", "upgraded", "downgraded", "changed")
    }
    lines += [", ".join(f"{n} {c}" for c, n in counts.items() if n), ""]
    lines += ["| kind | name | change | old | new |", "| --- | --- | --- | --- | --- |"]
    for c in changes:
        lines.append(f"| {c.kind} | `{c.name}` | {c.change} | {_md(c.old)} | {_md(c.new)} |")
    return "\n".join(lines) + "\n"


def _md(value: str | None) -> str:
    if value is None:
        return ""
    shown = value if len(value) <= 24 or not value.startswith("sha256:") else value[:19] + "…"
    escaped = shown.replace("|", "\\|")
    return f"`{escaped}`"
