"""One label selector for every listing (builder/resources.py): gc, prune, images and cleanup."""

from __future__ import annotations

import pytest

from builder.resources import label_selector


def test_selector_keeps_every_label() -> None:
    assert label_selector({"created-by": "capi-image", "build-id": "ab12"}) == "created-by=capi-image,build-id=ab12"


def test_an_empty_selector_is_refused() -> None:
    # It would match every server, key and snapshot of the project: cleanup and gc act on it.
    with pytest.raises(ValueError, match="every resource"):
        label_selector({})
