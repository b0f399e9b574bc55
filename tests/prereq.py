"""The one guard for a missing prerequisite: a skip that says why on a developer's machine, a
failure under CI (``CI`` set, as GitHub Actions and .ci/run set it), which must run everything."""

from __future__ import annotations

import os

import pytest


def under_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false")


def require(missing: str | None, *, module: bool = False) -> None:
    """Nothing when ``missing`` is None; else skip (locally) or fail (CI), naming what is missing."""
    if missing is None:
        return
    if under_ci():
        pytest.fail(f"CI must run this, but: {missing}", pytrace=False)
    pytest.skip(missing, allow_module_level=module)
