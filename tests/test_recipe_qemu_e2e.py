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

from .buildkit import leftovers, run_build, snapshots
from .conftest import require_qemu

pytestmark = pytest.mark.qemu


@pytest.fixture
def qemu_cloud(tmp_path: Path) -> Iterator[LocalCloud]:
    require_qemu()
    with LocalCloud(Settings(backend="qemu", state_dir=tmp_path / "state")) as lc:
        yield lc


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[ArtifactMirror]:
    debian = debian_binaries(default_cache_dir() / "artifacts")
    with MirrorServer(tmp_path / "mirror") as m:
        m.populate(debian)
        yield m


def local_full_project(lc: LocalCloud, mirror: ArtifactMirror, tmp_path: Path, **extra: object) -> ProjectConfig:
    return ProjectConfig.model_validate(
        {**full_recipe_project(lc.endpoint, mirror, tmp_path / "k8s-local.json"), **extra}
    )


def test_full_recipe_on_a_real_vm(qemu_cloud: LocalCloud, mirror: ArtifactMirror, tmp_path: Path) -> None:
    out = run_build(qemu_cloud, local_full_project(qemu_cloud, mirror, tmp_path), tmp_path)
    assert out.error is None, out.error
    m = out.manifest
    assert [s["name"] for s in m["steps"]] == [
        "setup", "node", "hcloud-provider", "containerd", "registry-mirrors", "kubernetes", "sysprep", "verify",
    ]  # fmt: skip
    assert all(s["ok"] and s["seconds"] > 0 for s in m["steps"])
    [snap] = snapshots(qemu_cloud)
    assert snap["status"] == "available"
    assert "caph-image-name" in snap["labels"]
    assert leftovers(qemu_cloud) == {"servers": [], "ssh_keys": [], "unpublished": []}
    ratio = snap["image_size"] * 1024**3 / m["root_used_bytes"]
    print(f"image_size {snap['image_size']} GB, root used {m['root_used_bytes']} B, ratio {ratio:.3f}")
    assert ratio <= 1.05


def test_a_failed_check_fails_the_build_by_name(qemu_cloud: LocalCloud, mirror: ArtifactMirror, tmp_path: Path) -> None:
    """A custom script undoes a sysctl: verify names the check, nothing is published or leaked."""
    script = tmp_path / "revert-forwarding.sh"
    script.write_text("#!/bin/bash\nset -eu\nsysctl -w net.ipv4.ip_forward=0\n")
    cfg = local_full_project(qemu_cloud, mirror, tmp_path, boot_test=False)
    cfg = cfg.model_copy(
        update={"provision": cfg.provision.model_copy(update={"scripts": [script], "dist_upgrade": False})}
    )
    out = run_build(qemu_cloud, cfg, tmp_path)
    assert out.error is not None
    assert "step 'verify'" in str(out.error)
    assert "kernel-param net.ipv4.ip_forward: got '0', want '1'" in str(out.error)
    assert out.manifest["cleanup"] == "complete"
    assert snapshots(qemu_cloud) == []
    assert leftovers(qemu_cloud) == {"servers": [], "ssh_keys": [], "unpublished": []}
