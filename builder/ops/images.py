"""``capi-image images``: the snapshots this tool built, newest first, with their labels."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..caph import CAPH_LABEL
from ..cloud import Cloud
from ..config import Timeouts
from ..resources import CREATED_BY, Resources

COLUMNS = ("id", "created", "status", "architecture", CAPH_LABEL, "image_size_gb")


def list_images(cloud: Cloud, labels: dict[str, str]) -> list[dict[str, Any]]:
    """The snapshots carrying ``created-by=capi-image`` and the project's ``labels``."""
    found = Resources(cloud, Timeouts(), {**labels, "created-by": CREATED_BY}).list("snapshots")
    found.sort(key=lambda i: i.created or dt.datetime.min.replace(tzinfo=dt.UTC), reverse=True)
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
