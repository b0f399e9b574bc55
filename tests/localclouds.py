"""The one way tests start localcloud, and the OpenAPI check every instance gets at the end."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from localcloud.server import LocalCloud, Settings

from . import openapi_check
from .prereq import under_ci


class LocalClouds:
    """The one way tests start localcloud: every instance records its answers, is stopped at
    teardown and then checked against Hetzner's OpenAPI document (``assert_conforms``)."""

    def __init__(self) -> None:
        self.started: list[LocalCloud] = []

    def start(self, **settings: Any) -> LocalCloud:
        lc = LocalCloud(Settings(**{"backend": "stub", **settings, "record_exchanges": True})).start()
        self.started.append(lc)
        return lc

    def close(self) -> None:
        for lc in self.started:
            lc.stop()
        for lc in self.started:
            assert_conforms(lc)


@contextlib.contextmanager
def opened_localclouds() -> Iterator[LocalClouds]:
    clouds = LocalClouds()
    try:
        yield clouds
    finally:
        clouds.close()


def assert_conforms(lc: LocalCloud) -> None:
    """Every answer ``lc`` recorded conforms to Hetzner's OpenAPI document (CI must have it)."""
    if not openapi_check.spec_available():
        if under_ci():
            pytest.fail(
                f"CI must check answers against Hetzner's OpenAPI document: {openapi_check.SPEC_PATH} is missing"
            )
        return  # locally: the conformance tests themselves say it is missing
    found = [p for ex in lc.state.exchanges for p in openapi_check.problems(ex)]
    assert not found, "answers that break Hetzner's OpenAPI document:\n" + "\n".join(found[:20])
