"""Where the reference material beside the checkout is (read in place, never copied)."""

from __future__ import annotations

import os
from pathlib import Path

# image-builder v0.1.48 as upstream released it: ../shared/reference beside the clone.
UPSTREAM = Path(
    os.environ.get(
        "IMAGE_BUILDER_REFERENCE", Path(__file__).resolve().parents[2] / "shared/reference/image-builder-v0.1.48"
    )
)
