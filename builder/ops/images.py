"""``capi-image images``: the snapshots this tool built, newest first, with their labels."""

from __future__ import annotations

from typing import Any

from ..caph import CAPH_LABEL
from ..cloud import Cloud
from ..resources import CREATED_BY

COLUMNS = ("id", "created", "status", "architecture", CAPH_LABEL, "image_size_gb")


def list_images(cloud: Cloud) -> list[dict[str, Any]]:
    found = cloud.call(
        "list snapshots",
        lambda: cloud.client.images.get_all(
            label_selector=f"created-by={CREATED_BY}", type=["snapshot"], sort=["created:desc"]
        ),
    )
    return [
        {
            "id": i.id,
            "created": i.created.isoformat() if i.created else None,
            "status": i.status,
            "architecture": i.architecture,
            CAPH_LABEL: (i.labels or {}).get(CAPH_LABEL),
            "image_size_gb": i.image_size,
            "labels": i.labels,
        }
        for i in found
    ]
