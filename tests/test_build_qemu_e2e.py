"""End to end on real VMs: ``capi-image build --project local`` against localcloud (qemu
backend, debian-12) produces an available, fully labelled snapshot and leaves no server, key
or VM behind. localcloud runs as its own process, reached through HCLOUD_ENDPOINT."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from builder.config import CONFIG_DIR

from .conftest import qemu_pids, require_qemu

pytestmark = pytest.mark.qemu


@pytest.fixture
def localcloud_process(tmp_path: Path) -> Iterator[str]:
    require_qemu()
    proc = subprocess.Popen(
        [sys.executable, "-m", "localcloud", "serve", "--backend", "qemu", "--state-dir", str(tmp_path / "state")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    endpoint = proc.stdout.readline().strip()
    try:
        yield endpoint
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def test_build_local_project_on_real_vms(localcloud_process: str, tmp_path: Path) -> None:
    endpoint = localcloud_process
    config = tmp_path / "config"
    (config / "projects").mkdir(parents=True)
    (config / "projects" / "local.yaml").write_text((CONFIG_DIR / "projects" / "local.yaml").read_text())
    (config / "vars").mkdir()
    (config / "vars" / "k8s-1.31.json").write_text((CONFIG_DIR / "vars" / "k8s-1.31.json").read_text())
    env = {**__import__("os").environ, "CAPI_IMAGE_CONFIG_DIR": str(config), "HCLOUD_ENDPOINT": endpoint}
    env.pop("HCLOUD_TOKEN", None)
    r = subprocess.run(
        [sys.executable, "-m", "builder.cli", "build", "--project", "local", "--log-format", "json",
         "--manifest", str(tmp_path / "manifest.json")],
        env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    manifest = json.loads((tmp_path / "manifest.json").read_text())

    admin = httpx.Client(base_url=endpoint.removesuffix("/v1") + "/__localcloud", timeout=30)
    state = admin.get("/state").json()
    [snap] = [i for i in state["images"] if i["type"] == "snapshot"]
    assert snap["id"] == out["snapshot_id"] == manifest["snapshot_id"]
    assert snap["status"] == "available"
    labels = snap["labels"]
    assert labels["caph-image-name"] == out["caph-image-name"]
    assert labels["caph-image-name"].startswith("k8s-v1.31.4-debian-12-x86-")
    for key in ("created-by", "build-id", "kubernetes_version", "distribution", "distribution_release",
                "distribution_version", "build_timestamp", "build_date", "os", "arch", "project"):  # fmt: skip
        assert key in labels, key
    assert labels["build-id"] == manifest["build_id"]
    assert state["servers"] == []
    assert state["ssh_keys"] == []
    assert qemu_pids() == set()
    assert list((tmp_path / "state" / "servers").iterdir()) == []

    # The snapshot really holds the build: its size is what the guest had on its disk.
    assert manifest["root_used_bytes"] > 100_000_000
    ratio = snap["image_size"] * 1024**3 / manifest["root_used_bytes"]
    assert 0.5 < ratio < 1.5, ratio
    # The build plus the boot test (a second server, key, waits); the bench holds the tight target.
    assert manifest["api_requests"] <= 100, manifest["api_requests_by_call"]
    assert [s["name"] for s in manifest["steps"]] == ["provenance", "sysprep"]

    # The snapshot of a real-VM build lifts into Cluster API manifests (v1beta2 cluster file).
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text((Path(__file__).parent / "data" / "clusters" / "v1beta2.yaml").read_text())
    r = subprocess.run(
        [sys.executable, "-m", "builder.cli", "manifests", "--from", str(tmp_path / "manifest.json"),
         "--cluster", str(cluster)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    lifted = json.loads(r.stdout)
    assert lifted["HCLOUD_IMAGE"] == str(snap["id"])
    assert f"imageName: {labels['caph-image-name']}" in cluster.read_text().replace('"', "")
    assert len(lifted["updated"]) == 3
