"""The full node recipe on a real VM: localcloud (qemu, debian-12) and the local artifact mirror
(Debian's real containerd/runc/CNI, stand-ins for kubelet & co.). containerd really runs with
the rendered config, every verify check passes, the snapshot is published."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from builder.config import ProjectConfig
from localcloud.artifacts import ArtifactMirror, MirrorServer, debian_binaries, full_recipe_project
from localcloud.paths import default_cache_dir
from localcloud.server import LocalCloud, Settings

from .buildkit import Outcome, leftovers, run_build, snapshots
from .conftest import require_qemu

pytestmark = pytest.mark.qemu


@pytest.fixture(scope="module")
def qemu_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    require_qemu()
    with LocalCloud(Settings(backend="qemu", state_dir=tmp_path_factory.mktemp("state"))) as lc:
        yield lc


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArtifactMirror]:
    debian = debian_binaries(default_cache_dir() / "artifacts")
    with MirrorServer(tmp_path_factory.mktemp("mirror")) as m:
        m.populate(debian)
        yield m


def local_full_project(lc: LocalCloud, mirror: ArtifactMirror, tmp_path: Path, **extra: object) -> ProjectConfig:
    return ProjectConfig.model_validate(
        {**full_recipe_project(lc.endpoint, mirror, tmp_path / "k8s-local.json"), **extra}
    )


@pytest.fixture(scope="module")
def full_build(qemu_cloud: LocalCloud, mirror: ArtifactMirror, tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    """The full recipe, built once per module: under TCG it is most of the suite's time."""
    tmp = tmp_path_factory.mktemp("full")
    return run_build(qemu_cloud, local_full_project(qemu_cloud, mirror, tmp), tmp)


def test_full_recipe_on_a_real_vm(qemu_cloud: LocalCloud, full_build: Outcome) -> None:
    out = full_build
    assert out.error is None, out.error
    m = out.manifest
    print("step seconds:", {s["name"]: round(s["seconds"]) for s in m["steps"]})
    assert [s["name"] for s in m["steps"]] == [
        "setup", "node", "hcloud-provider", "containerd", "registry-mirrors", "kubernetes", "sysprep", "verify",
    ]  # fmt: skip
    assert all(s["ok"] and s["seconds"] > 0 for s in m["steps"])
    snap = next(s for s in snapshots(qemu_cloud) if s["id"] == m["snapshot_id"])
    assert snap["status"] == "available"
    assert "caph-image-name" in snap["labels"]
    assert leftovers(qemu_cloud) == {"servers": [], "ssh_keys": [], "unpublished": []}
    ratio = snap["image_size"] * 1024**3 / m["root_used_bytes"]
    print(f"image_size {snap['image_size']} GB, root used {m['root_used_bytes']} B, ratio {ratio:.3f}")
    assert ratio <= 1.05


def test_a_failed_check_fails_the_build_by_name(
    qemu_cloud: LocalCloud, mirror: ArtifactMirror, full_build: Outcome, tmp_path: Path
) -> None:
    """A custom script undoes a sysctl: verify names the check, nothing is published or leaked.

    The build starts from the full recipe's snapshot (project ``image: <id>``) and runs the whole
    recipe again: every other check passes, so the failure is the script's alone, and the recipe
    is shown to re-apply cleanly on its own output without paying for a fresh install twice."""
    if full_build.error is not None:
        pytest.fail(f"needs the full recipe's snapshot, whose build failed: {full_build.error}")
    base = full_build.manifest["snapshot_id"]
    script = tmp_path / "revert-forwarding.sh"
    script.write_text("#!/bin/bash\nset -eu\nsysctl -w net.ipv4.ip_forward=0\n")
    cfg = local_full_project(qemu_cloud, mirror, tmp_path, boot_test=False, image=str(base))
    cfg = cfg.model_copy(
        update={"provision": cfg.provision.model_copy(update={"scripts": [script], "dist_upgrade": False})}
    )
    before = [s["id"] for s in snapshots(qemu_cloud)]
    out = run_build(qemu_cloud, cfg, tmp_path)
    assert out.error is not None
    assert "step 'verify'" in str(out.error)
    assert "kernel-param net.ipv4.ip_forward: got '0', want '1'" in str(out.error)
    # only that check failed: the rest of the recipe re-applied on the snapshot
    assert "1 check(s) failed" in str(out.error), out.error
    steps = {s["name"]: s["ok"] for s in out.manifest["steps"]}
    assert all(ok for name, ok in steps.items() if name != "verify"), steps
    assert out.manifest["cleanup"] == "complete"
    assert [s["id"] for s in snapshots(qemu_cloud)] == before
    assert leftovers(qemu_cloud) == {"servers": [], "ssh_keys": [], "unpublished": []}
