"""Matrix builds through the real CLI against localcloud (stub machines): 4 images built
concurrently within the project's rate limit, one injected failure leaving the others published,
a signal stopping all of them, and nothing leaked in any case."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from builder.budget import RequestBudget
from builder.config import ConfigError, ProjectConfig
from builder.naming import FIELDS, image_name, name_fields
from builder.ops.matrix import PROBE_TIME, expand
from localcloud.server import LocalCloud, Settings

from ..buildkit import BUILD_TIMES, NO_LEAKS, STUB_PROJECT, VERSIONS, cli_env, leftovers, snapshots, write_project
from ..localclouds import LocalClouds

MATRIX = """\
matrix:
  os: [ubuntu-2404, ubuntu-2204]
  architecture: [x86, arm]
  server_types: {arm: cax11}
  parallel: 4
"""
# localcloud's bucket: 30 requests, +5/s. Four builds need about 100 requests, far more than
# 30 plus what refills in the few seconds four unpaced builds take.
LIMIT, REFILL = 30, 5.0
BUDGET = f"api_budget: {{limit: {LIMIT}, per_second: {REFILL}, reserve: 4}}\n"


@pytest.fixture
def lc(localclouds: LocalClouds) -> LocalCloud:
    return localclouds.start(action_times=BUILD_TIMES, rate_limit=LIMIT, rate_refill=REFILL)


def matrix_build(lc: LocalCloud, tmp: Path, text: str) -> subprocess.CompletedProcess[str]:
    write_project(tmp / "config", "m", text)
    cmd = [sys.executable, "-m", "builder.cli", "build", "-p", "m", "--matrix", "--log-format", "json",
           "--manifest", str(tmp / "matrix.json")]  # fmt: skip
    return subprocess.run(cmd, env=cli_env(tmp / "config", lc.endpoint), capture_output=True, text=True, timeout=300)


def status_counts(lc: LocalCloud) -> dict[int, int]:
    counts: dict[int, int] = {}
    for r in lc.admin().requests():
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    return counts


def test_four_builds_share_the_budget(lc: LocalCloud, tmp_path: Path) -> None:
    r = matrix_build(lc, tmp_path, STUB_PROJECT + MATRIX + BUDGET)
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads(r.stdout)
    assert [b["status"] for b in doc["builds"]] == ["published"] * 4
    assert {b["variant"] for b in doc["builds"]} == {
        "ubuntu-2404/x86/k8s-v1.31.4", "ubuntu-2404/arm/k8s-v1.31.4",
        "ubuntu-2204/x86/k8s-v1.31.4", "ubuntu-2204/arm/k8s-v1.31.4",
    }  # fmt: skip
    # One name may serve both architectures: CAPH filters by the server type's architecture.
    published = sorted((i["labels"]["caph-image-name"], i["architecture"]) for i in snapshots(lc))
    assert [n for n, _ in published] == sorted(b["caph-image-name"] for b in doc["builds"])
    assert sorted(a for _, a in published) == ["arm", "arm", "x86", "x86"]
    assert len(set(published)) == 4
    # More requests than the bucket holds, yet not one 429: the shared budget paced them.
    counts = status_counts(lc)
    assert sum(counts.values()) > LIMIT
    assert doc["api_requests"] == sum(counts.values())
    assert 429 not in counts, counts
    assert doc["api_budget_wait_seconds"] > 0

    assert leftovers(lc) == NO_LEAKS
    for b in doc["builds"]:  # each build wrote its own manifest next to the summary
        assert json.loads(Path(b["manifest"]).read_text())["caph_image_name"] == b["caph-image-name"]
    assert json.loads((tmp_path / "matrix.json").read_text())["builds"] == doc["builds"]


def test_the_default_budget_follows_a_smaller_project_limit(lc: LocalCloud, tmp_path: Path) -> None:
    """Hetzner's defaults (3600, +1/s, 300 reserved) against a project announcing 30: the budget
    shrinks to the announced limit instead of waiting for a reserve the project cannot have."""
    r = matrix_build(lc, tmp_path, STUB_PROJECT + MATRIX.replace("parallel: 4", "parallel: 2").replace(
        "architecture: [x86, arm]", "architecture: [x86]").replace("os: [ubuntu-2404, ubuntu-2204]", "os: [debian-12]"))  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert "api.budget.adjusted" in r.stderr
    assert leftovers(lc) == NO_LEAKS


def test_without_pacing_the_limit_is_hit(lc: LocalCloud, tmp_path: Path) -> None:
    """The control for test_four_builds_share_the_budget: a budget refilling far faster than the project's runs
    into the limit (the retries absorb the 429s, but CAPH in that project would be starved)."""
    patient = STUB_PROJECT.replace("retry: {attempts: 6, initial_wait: 0.01, max_wait: 0.05}",
                                   "retry: {attempts: 10, initial_wait: 0.2, max_wait: 2}")  # fmt: skip
    assert patient != STUB_PROJECT
    r = matrix_build(lc, tmp_path, patient + MATRIX + "api_budget: {per_second: 1000, reserve: 0}\n")
    assert r.returncode == 0, r.stderr[-3000:]
    assert status_counts(lc).get(429, 0) > 0
    assert leftovers(lc) == NO_LEAKS


def test_one_failure_leaves_the_others_published(lc: LocalCloud, tmp_path: Path) -> None:
    lc.admin().add_fault(method="POST", path=r"/actions/create_image$", kind="action_error", times=1)
    r = matrix_build(lc, tmp_path, STUB_PROJECT + MATRIX + BUDGET)
    assert r.returncode == 1, r.stderr[-3000:]
    assert "some builds failed" in r.stderr
    doc = json.loads(r.stdout)
    statuses = sorted(b["status"] for b in doc["builds"])
    assert statuses == ["failed", "published", "published", "published"]
    (failed,) = [b for b in doc["builds"] if b["status"] == "failed"]
    assert "create image" in failed["error"]
    report = subprocess.run([sys.executable, "-m", "builder.cli", "summary", str(tmp_path / "matrix.json")],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert report.returncode == 0, report.stderr
    assert report.stdout.count("| published |") == 3
    assert f"**{failed['variant']}** failed: " in report.stdout
    assert len(snapshots(lc)) == 3
    assert leftovers(lc) == NO_LEAKS


def test_a_signal_stops_every_build_and_leaks_nothing(tmp_path: Path) -> None:
    # The snapshot takes longer than the signal takes to arrive: the servers are locked by it
    # when cleanup starts, so cleanup has to wait the snapshots out.
    slow = {**BUILD_TIMES, "create_image": 8.0}
    with LocalCloud(Settings(backend="stub", action_times=slow)) as lc:
        write_project(tmp_path / "config", "m", STUB_PROJECT + MATRIX)
        cmd = [sys.executable, "-m", "builder.cli", "build", "-p", "m", "--matrix", "--log-format", "json",
               "--manifest", str(tmp_path / "matrix.json")]  # fmt: skip
        proc = subprocess.Popen(cmd, env=cli_env(tmp_path / "config", lc.endpoint), text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        deadline = time.monotonic() + 60
        while len(snapshots(lc)) < 4 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(snapshots(lc)) == 4, "the four builds never reached the snapshot"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 130, err[-3000:]
        assert [b["status"] for b in json.loads(out)["builds"]] == ["interrupted"] * 4
        assert leftovers(lc) == NO_LEAKS
        assert snapshots(lc) == []


def test_expand_checks_the_matrix_before_anything_runs(tmp_path: Path) -> None:
    base = {"name": "m", "location": "fsn1", "server_type": "cpx22", "os": "ubuntu-2404", "versions": VERSIONS}
    with pytest.raises(ConfigError, match="has no matrix"):
        expand(ProjectConfig.model_validate(base))
    same = ProjectConfig.model_validate({**base, "image_name": "k8s-{kubernetes_semver}-{timestamp}",
                                         "matrix": {"os": ["ubuntu-2404", "ubuntu-2204"]}})  # fmt: skip
    with pytest.raises(ConfigError, match="the same name"):
        expand(same)
    with pytest.raises(ConfigError, match="more than once"):
        expand(ProjectConfig.model_validate({**base, "matrix": {"versions": [VERSIONS, VERSIONS]}}))
    missing = ProjectConfig.model_validate({**base, "matrix": {"versions": [tmp_path / "k8s-9.99.json"]}})
    with pytest.raises(ConfigError, match=r"k8s-9\.99\.json"):
        expand(missing)
    variants = expand(ProjectConfig.model_validate({**base, "matrix": {"architecture": ["x86", "arm"],
                                                                       "server_types": {"arm": "cax21"}}}))  # fmt: skip
    assert [(v.config.architecture, v.config.server_type) for v in variants] == [("x86", "cpx22"), ("arm", "cax21")]
    assert all(v.config.matrix is None for v in variants)


def test_the_matrix_names_variants_as_the_build_does(tmp_path: Path) -> None:
    """One function names images: ``{kubernetes_series}`` tells var files for 1.31 and 1.32 apart
    (the matrix's own copy formatted it empty and refused them as a clash), and the matrix's name
    is the build's, but for the time and build id."""
    v132 = tmp_path / "k8s-1.32.json"
    v132.write_text(VERSIONS.read_text().replace("v1.31", "v1.32").replace("1.31.", "1.32."))
    base = {"name": "m", "location": "fsn1", "server_type": "cpx22", "os": "ubuntu-2404", "versions": VERSIONS,
            "image_name": "k8s-{kubernetes_series}-{os}-{arch}", "matrix": {"versions": [VERSIONS, v132]}}  # fmt: skip
    variants = expand(ProjectConfig.model_validate(base))
    names = [
        image_name(v.config.image_name, versions=v.versions, profile=v.config.profile, arch="x86",
                   started=PROBE_TIME, build_id="b", project="m")
        for v in variants
    ]  # fmt: skip
    assert names == ["k8s-v1.31-ubuntu-24.04-x86", "k8s-v1.32-ubuntu-24.04-x86"]
    filled = name_fields(versions=variants[0].versions, profile=variants[0].config.profile, arch="x86",
                         started=PROBE_TIME, build_id="b", project="m")  # fmt: skip
    assert set(filled) == FIELDS  # the fields a template may name are the ones filled
    # preflight and the matrix share the function: no other place formats the template
    for path in Path(__file__).resolve().parents[2].joinpath("builder").rglob("*.py"):
        if path.name != "naming.py":
            assert "image_name.format(" not in path.read_text(), path


def test_budget_paces_and_follows_the_server() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    b = RequestBudget(limit=5, per_second=2.0, reserve=2, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        b.acquire()
    assert slept == []
    b.acquire()  # the bucket (5 - 2 reserved) is empty: half a second for the next token
    assert slept == [0.5]
    b.observe({"RateLimit-Remaining": "2"})  # someone else spent the rest: only the reserve is left
    b.acquire()
    assert slept[-1] == pytest.approx(0.5)
    assert b.requests == 5
