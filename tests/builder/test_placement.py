"""Hetzner's capacity and deprecation reality: a location without room for the type moves the
build to the project's next placement; a deprecated type fails preflight with its date, or warns
while only announced. Stub localcloud, its placement overlay set through the admin API."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from builder.pipeline import PreflightError
from localcloud.server import LocalCloud

from ..buildkit import BUILD_TIMES, NO_LEAKS, leftovers, project, run_build, snapshots
from ..localclouds import LocalClouds


@pytest.fixture
def lc(localclouds: LocalClouds) -> LocalCloud:
    return localclouds.start(action_times=BUILD_TIMES)


def _servers_created(lc: LocalCloud) -> list[dict[str, object]]:
    return [r for r in lc.admin().requests() if r["method"] == "POST" and r["path"] == "/v1/servers"]


@pytest.mark.parametrize("code", ["resource_unavailable", "placement_error"])
def test_no_capacity_moves_the_build_to_the_next_location(lc: LocalCloud, tmp_path: Path, code: str) -> None:
    lc.admin().set_placement("cpx22", "fsn1", refuse=code)
    cfg = project(lc.endpoint, fallback_locations=["nbg1", "hel1"])
    out = run_build(lc, cfg, tmp_path)
    assert out.error is None, out.error
    m = out.manifest
    assert (m["server_type"], m["location"]) == ("cpx22", "nbg1")
    assert [(t["location"], t["error"].split(":")[0]) for t in m["placement"]["tried"]] == [("fsn1", code)]
    assert [r["status"] for r in _servers_created(lc)] == [412 if code == "resource_unavailable" else 422, 201]
    assert leftovers(lc) == NO_LEAKS and len(snapshots(lc)) == 1


def test_fallback_server_types_after_every_location_of_the_first(lc: LocalCloud, tmp_path: Path) -> None:
    for loc in ("fsn1", "nbg1"):
        lc.admin().set_placement("cpx22", loc, refuse="resource_unavailable")
    cfg = project(lc.endpoint, fallback_locations=["nbg1"], fallback_server_types=["cax11", "cx23"])
    out = run_build(lc, cfg, tmp_path)
    assert out.error is None, out.error
    # cax11 is arm: left out of an x86 build; cx23 in fsn1 is next.
    assert (out.manifest["server_type"], out.manifest["location"]) == ("cx23", "fsn1")
    assert len(out.manifest["placement"]["tried"]) == 2


def test_no_capacity_anywhere_fails_naming_every_try_and_leaks_nothing(lc: LocalCloud, tmp_path: Path) -> None:
    for loc in ("fsn1", "nbg1"):
        lc.admin().set_placement("cpx22", loc, refuse="resource_unavailable")
    out = run_build(lc, project(lc.endpoint, fallback_locations=["nbg1"]), tmp_path)
    assert out.error is not None and "no capacity in any of the project's placements" in str(out.error)
    assert "cpx22 in fsn1: resource_unavailable" in str(out.error) and "cpx22 in nbg1" in str(out.error)
    assert out.manifest["cleanup"] == "complete" and leftovers(lc) == NO_LEAKS


def test_a_type_deprecated_in_the_past_fails_preflight_with_its_date(lc: LocalCloud, tmp_path: Path) -> None:
    past = {"announced": "2026-01-01T00:00:00Z", "unavailable_after": "2026-04-01T00:00:00Z"}
    lc.admin().set_placement("cpx22", "fsn1", deprecation=past)
    out = run_build(lc, project(lc.endpoint), tmp_path)
    assert isinstance(out.error, PreflightError)
    assert "cpx22 in fsn1: deprecated, unavailable since 2026-04-01" in str(out.error)
    assert _servers_created(lc) == []
    # with somewhere else to go, the build goes there
    out = run_build(lc, project(lc.endpoint, fallback_locations=["nbg1"]), tmp_path)
    assert out.error is None and out.manifest["location"] == "nbg1"


def test_an_announced_deprecation_warns_and_builds(lc: LocalCloud, tmp_path: Path) -> None:
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=90)
    lc.admin().set_placement(
        "cpx22",
        "fsn1",
        deprecation={"announced": "2026-11-01T00:00:00Z", "unavailable_after": soon.strftime("%Y-%m-%dT%H:%M:%SZ")},
    )
    out = run_build(lc, project(lc.endpoint), tmp_path)
    assert out.error is None, out.error
    assert out.manifest["placement"]["warnings"] == [
        f"cpx22 in fsn1: deprecation announced 2026-11-01, unavailable after {soon:%Y-%m-%d}"
    ]


def test_temporarily_unavailable_is_skipped_in_preflight(lc: LocalCloud, tmp_path: Path) -> None:
    lc.admin().set_placement("cpx22", "fsn1", available=False)
    out = run_build(lc, project(lc.endpoint), tmp_path)
    assert isinstance(out.error, PreflightError) and "cpx22 in fsn1: temporarily unavailable" in str(out.error)
    out = run_build(lc, project(lc.endpoint, fallback_locations=["hel1"]), tmp_path)
    assert out.error is None and out.manifest["location"] == "hel1"
