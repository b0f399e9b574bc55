"""Shared fixtures: localcloud in-process, the real hcloud SDK against it, keys."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hcloud import Client

from localcloud.imagestore import ImageStore
from localcloud.paths import default_cache_dir
from localcloud.server import LocalCloud

from .localclouds import LocalClouds, opened_localclouds
from .prereq import require

# Short modelled action times: lifecycle tests wait on real actions, just not for long.
FAST = {
    "create_server": 0.2,
    "start_server": 0.2,
    "stop_server": 0.2,
    "shutdown_server": 0.1,
    "reboot_server": 0.2,
    "reset_server": 0.2,
    "create_image": 0.3,
    "delete_server": 0.2,
    "guest_shutdown": 0.3,
}

TOKEN = "localcloud-test-token"


def qemu_missing() -> str | None:
    """Why real-VM tests cannot run here, or None."""
    for tool in ("qemu-system-x86_64", "qemu-img", "genisoimage"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if os.geteuid() != 0:
        return "binding 127.0.0.N:22 needs root"
    have = {i.name for i in ImageStore(default_cache_dir()).list()}
    for name in ("debian-12", "debian-13"):
        if name not in have:
            return f"no {name} base image: run `make base-image`"
    return None


def require_qemu() -> None:
    """Skip without QEMU, root or the base image — but fail in CI, which must run these."""
    require(qemu_missing())


def qemu_pids(state_dir: Path | None = None) -> set[int]:
    """localcloud's QEMU processes — with ``state_dir``, only those of the localcloud using it
    (their command line names their disk there): a leak check looks at what its test started."""
    out = subprocess.run(["pgrep", "-af", "qemu-system-x86_64 -name localcloud-"], capture_output=True, text=True)
    return {
        int(line.split()[0]) for line in out.stdout.splitlines() if state_dir is None or f"{state_dir}/servers/" in line
    }


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "qemu: boots real VMs (needs qemu, the base image and root)")
    config.addinivalue_line("markers", "cli: drives Debian's hcloud CLI")


# `make test` runs two pytest-xdist workers. Every real-VM test goes to one of them, one after the
# other (they are CPU-bound under TCG, and some assert that no other VM runs); the stub tests,
# which mostly wait on modelled cloud time, run in the other. xdist's own `--dist loadgroup`
# cannot do this with pytest 9 (it renames node ids through an attribute pytest no longer
# reads), so the grouping is a scheduler keyed on the module, checked against the marker.
VM_MODULES = frozenset({"test_build_qemu_e2e.py", "test_localcloud_process.py", "test_qemu_backend.py"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    stray = sorted({i.path.name for i in items if i.get_closest_marker("qemu") and i.path.name not in VM_MODULES})
    if stray:
        raise pytest.UsageError(f"tests marked qemu outside VM_MODULES in tests/conftest.py: {stray}")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    from xdist.scheduler import LoadScopeScheduling

    class VmApart(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "real VMs" if nodeid.split("::")[0].rsplit("/", 1)[-1] in VM_MODULES else nodeid

    return VmApart(config, log)


@pytest.fixture
def localclouds() -> Iterator[LocalClouds]:
    """Start localclouds for one test: ``localclouds.start(action_times=..., tokens=...)``."""
    with opened_localclouds() as clouds:
        yield clouds


@pytest.fixture(scope="module")
def module_localclouds() -> Iterator[LocalClouds]:
    """The same, shared by a module's tests."""
    with opened_localclouds() as clouds:
        yield clouds


@pytest.fixture
def cloud_settings() -> dict[str, Any]:
    """Settings of the ``cloud`` fixture; a test's own fixture may change them first."""
    return {"action_times": dict(FAST)}


@pytest.fixture
def cloud(localclouds: LocalClouds, cloud_settings: dict[str, Any]) -> LocalCloud:
    """localcloud (stub backend, short modelled actions) for one test."""
    return localclouds.start(**cloud_settings)


@pytest.fixture
def client(cloud: LocalCloud) -> Client:
    return Client(token=TOKEN, api_endpoint=cloud.endpoint, poll_interval=0.05, timeout=10)


@dataclass
class KeyPair:
    private: Ed25519PrivateKey
    public_openssh: str

    def paramiko_key(self) -> paramiko.PKey:
        pem = self.private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        ).decode()
        return paramiko.Ed25519Key.from_private_key(io.StringIO(pem))

    def private_openssh(self) -> str:
        return self.private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        ).decode()


def new_keypair() -> KeyPair:
    k = Ed25519PrivateKey.generate()
    pub = k.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return KeyPair(k, pub)


@pytest.fixture
def keypair() -> KeyPair:
    return new_keypair()


def require_mirror() -> None:
    """The populated artifact mirror in the default cache (`make test` populates it first):
    skip without it locally, fail under CI."""
    from localcloud.artifacts import mirror_metadata, mirror_root

    populated = mirror_metadata(mirror_root(default_cache_dir())) is not None
    require(None if populated else "localcloud's artifact mirror is not populated: run `make artifacts`")
