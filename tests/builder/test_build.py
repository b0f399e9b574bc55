"""A whole build against localcloud's stub machines: labels, manifest, cleanup, counts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from builder.caph import CAPH_LABEL
from builder.pipeline import PreflightError
from builder.pipeline.phases import PHASES
from localcloud.server import LocalCloud

from ..buildkit import BUILD_TIMES, NO_LEAKS, leftovers, project, run_build, snapshots
from ..localclouds import LocalClouds


@pytest.fixture
def lc(localclouds: LocalClouds) -> LocalCloud:
    return localclouds.start(action_times=BUILD_TIMES)


def test_build_publishes_a_labelled_snapshot_and_leaves_nothing(lc: LocalCloud, tmp_path: Path) -> None:
    out = run_build(lc, project(lc.endpoint), tmp_path)
    assert out.error is None, out.error
    assert out.result is not None
    [snap] = snapshots(lc)
    labels = snap["labels"]
    assert labels[CAPH_LABEL] == out.result.image_name
    # image-builder's default name and labels (packer/hcloud/*.json), plus the tool's own; a
    # partial recipe's image says so at the end of its name (the stub builds are minimal)
    assert re.fullmatch(r"cluster-api-ubuntu-2404-v1\.31\.4-\d{10}-minimal", out.result.image_name), (
        out.result.image_name
    )
    assert labels["recipe"] == "minimal"
    assert out.result.image_name.endswith(labels["build_timestamp"] + "-minimal")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ", labels["build_date"])
    assert labels["creationTimestamp"] == labels["build_date"]
    assert labels["image_builder_version"] == "v0.1.48"
    assert labels["os"] == "ubuntu-2404" and labels["arch"] == "x86"
    assert labels["created-by"] == "capi-image"
    assert labels["build-id"] == out.build_id
    assert labels["kubernetes_version"] == "v1.31.4"
    assert (labels["distribution"], labels["distribution_release"], labels["distribution_version"]) == (
        "ubuntu",
        "noble",
        "2404",
    )
    assert labels["build_timestamp"].isdigit()
    assert labels["team"] == "platform"
    assert snap["status"] == "available"
    assert snap["description"] == out.result.image_name
    assert leftovers(lc) == NO_LEAKS

    m = out.manifest
    assert m["result"] == "success"
    assert m["snapshot_id"] == snap["id"]
    assert m["caph_image_name"] == out.result.image_name
    assert m["labels"] == labels
    assert m["versions"]["kubernetes_semver"] == "v1.31.4"
    assert (m["os"], m["architecture"], m["server_type"], m["location"]) == ("ubuntu-2404", "x86", "cpx22", "fsn1")
    assert set(m["phases"]) == set(PHASES) - {"boot-test"}  # the stub project turns it off
    assert [s["name"] for s in m["steps"]] == ["provenance", "sysprep"]
    # The manifest's count is what the SDK sent; localcloud's log is what arrived.
    assert m["api_requests"] == len(lc.admin().requests())
    assert m["api_requests"] <= 30


def test_resources_carry_build_labels_and_names(lc: LocalCloud, tmp_path: Path) -> None:
    seen: dict[str, dict[str, str]] = {}

    def spy(phase: str, state: str) -> None:
        if phase == "ssh" and state == "start":
            st = lc.admin().state()
            seen["server"] = st["servers"][0]["labels"] | {"name": st["servers"][0]["name"]}
            seen["key"] = st["ssh_keys"][0]["labels"] | {"name": st["ssh_keys"][0]["name"]}

    out = run_build(lc, project(lc.endpoint), tmp_path, on_phase=spy)
    assert out.error is None
    for what in ("server", "key"):
        assert seen[what]["created-by"] == "capi-image"
        assert seen[what]["build-id"] == out.build_id
        assert seen[what]["name"] == f"capi-image-{out.build_id}"


def test_provision_runs_over_ssh_with_the_pinned_host_key(lc: LocalCloud, tmp_path: Path) -> None:
    commands: list[str] = []

    def spy(phase: str, state: str) -> None:
        if phase == "shutdown" and state == "start":
            sid = lc.admin().state()["servers"][0]["id"]
            commands.extend(c["command"] for c in lc.admin().ssh_log(sid))

    out = run_build(lc, project(lc.endpoint), tmp_path, on_phase=spy)
    assert out.error is None
    assert any("cloud-init status --wait" in c for c in commands)
    assert any("/etc/capi-image-release" in c for c in commands)
    assert any("cloud-init clean" in c for c in commands)


def test_existing_caph_image_name_is_refused_before_spending(lc: LocalCloud, tmp_path: Path) -> None:
    first = run_build(lc, project(lc.endpoint, image_name="fixed-name"), tmp_path)
    assert first.error is None
    lc.admin().clear_requests()
    second = run_build(lc, project(lc.endpoint, image_name="fixed-name"), tmp_path)
    assert isinstance(second.error, PreflightError)
    assert "ambiguous" in str(second.error)
    assert [r for r in lc.admin().requests() if r["method"] != "GET"] == []
    assert len(snapshots(lc)) == 1
