"""``make bench-boot`` on a stub localcloud: it finds the project's newest published image,
boots it and the base image in turn through the real SDK, logs in over SSH with the pinned host
key, prints the times and the median ratio, and leaves nothing behind. (The times of stand-in
machines mean nothing; the real measurement is in docs/bench.md.)"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from builder.ops.bootbench import Boot, summary

from ..buildkit import NO_LEAKS, STUB_PROJECT, build_command, cli_env, leftovers, stub_cloud, write_project


def test_summary_is_the_median_of_each_and_of_the_pairs_ratios() -> None:
    boots = [Boot(0, "base", 70.0), Boot(0, "node", 91.0), Boot(1, "base", 89.0), Boot(1, "node", 106.0),
             Boot(2, "base", 80.0), Boot(2, "node", 120.0)]  # fmt: skip
    base, node, ratio = summary(boots)
    assert (base, node) == (80.0, 106.0)
    assert ratio == pytest.approx(1.3)  # 1.30, 1.19, 1.50


def test_bench_boot_boots_both_images_and_cleans_up(tmp_path: Path) -> None:
    with stub_cloud() as lc:
        write_project(tmp_path / "config", "p", STUB_PROJECT)
        env = cli_env(tmp_path / "config", lc.endpoint)
        built = subprocess.run(build_command(tmp_path), env=env, capture_output=True, text=True, timeout=300)
        assert built.returncode == 0, built.stderr[-2000:]
        proc = subprocess.Popen([sys.executable, "-m", "builder.ops.bootbench", "-p", "p", "--pairs", "2"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        try:
            # Labelled as a build's servers are: gc scoped to the project finds a killed run's leftovers.
            labels = None
            deadline = time.monotonic() + 120
            while labels is None and proc.poll() is None and time.monotonic() < deadline:
                running = [x for x in lc.admin().state()["servers"] if x["name"].startswith("bench-boot-")]
                labels = running[0]["labels"] if running else None
                time.sleep(0.01)
            out, err = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, err[-2000:]
        assert labels is not None and labels["role"] == "bench-boot" and labels["team"] == "platform", labels
        assert labels["created-by"] == "capi-image" and labels["build-id"].startswith("bench-"), labels
        assert out.count(": base ") == 2 and out.count(": node ") == 2, out
        assert "median" in out and "base image ubuntu-24.04, node image cluster-api-ubuntu-2404-" in out, out
        assert leftovers(lc) == NO_LEAKS
        created = [q for q in lc.admin().requests() if q["method"] == "POST" and q["path"] == "/v1/servers"]
        assert len(created) == 1 + 4  # the build's server, then base/node twice


def test_without_a_published_image_it_says_so(tmp_path: Path) -> None:
    with stub_cloud() as lc:
        write_project(tmp_path / "config", "p", STUB_PROJECT)
        r = subprocess.run([sys.executable, "-m", "builder.ops.bootbench", "-p", "p"],
                           env=cli_env(tmp_path / "config", lc.endpoint), capture_output=True, text=True, timeout=120)  # fmt: skip
        assert r.returncode != 0
        assert "no published image of this project" in r.stderr and "Traceback" not in r.stderr, r.stderr
