"""The rollout tests' module-scoped builds (see tests/rolloutkit.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..rolloutkit import Built, two_builds


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    with two_builds(tmp_path_factory.mktemp("manifests")) as b:
        yield b
