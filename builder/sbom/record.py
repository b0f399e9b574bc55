"""The build's SBOM step: collect the inventory over the build's SSH session, write the CycloneDX
document beside the build manifest, and find the published image it may equal
(``build --skip-unchanged``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provision.plan import Plan

from ..caph import CAPH_LABEL
from ..cloud import Cloud
from ..listing import label_selector
from ..resources import CREATED_BY
from . import document, inventory

# A family: what must be equal for two images to be "the same image, rebuilt".
FAMILY_LABELS = ("os", "arch", "recipe")


@dataclass(frozen=True)
class SbomRecord:
    """What the manifest says about the SBOM, and the labels the snapshot carries."""

    path: Path
    sha256: str
    content_sha256: str
    packages: int
    binaries: int
    images: int
    labels: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "content_sha256": self.content_sha256,
            "packages": self.packages,
            "binaries": self.binaries,
            "images": self.images,
        }


def sbom_path(manifest: Path) -> Path:
    """``dist/build-<id>.json`` -> ``dist/build-<id>.cdx.json``."""
    return manifest.with_name(manifest.stem + ".cdx.json")


def write(
    output: str,
    *,
    plan: Plan,
    versions: dict[str, str],
    path: Path,
    image_name: str,
    build_id: str,
    created: dt.datetime,
    tool_version: str,
) -> SbomRecord:
    """Parse what ``inventory.COMMAND`` printed, write the validated document to ``path``."""
    inv = inventory.parse(output, inventory.downloads(plan, versions), versions)
    text = document.document(inv, image_name=image_name, build_id=build_id, created=created, tool_version=tool_version)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return SbomRecord(
        path,
        document.file_digest(text),
        document.content_digest(inv),
        len(inv.packages),
        len(inv.binaries),
        len(inv.images),
        document.labels(text, inv),
    )


def current_image(cloud: Cloud, project_labels: dict[str, str], labels: dict[str, str]) -> Any | None:
    """The newest published image of this image's family (the project's labels, OS,
    architecture, recipe), or None."""
    family = {**project_labels, "created-by": CREATED_BY, **{k: labels[k] for k in FAMILY_LABELS if k in labels}}
    query = f"{label_selector(family)},{CAPH_LABEL}"  # and published
    found = cloud.call(
        "find the current image", lambda: cloud.client.images.get_all(type=["snapshot"], label_selector=query)
    )
    published = [i for i in found if i.status == "available"]
    return max(published, key=lambda i: i.created or dt.datetime.min.replace(tzinfo=dt.UTC), default=None)
