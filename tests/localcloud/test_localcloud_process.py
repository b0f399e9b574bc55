"""localcloud as a process: state that survives a restart, and no VM outliving it."""

from __future__ import annotations

import http.client
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hcloud import Client
from hcloud.images import Image
from hcloud.server_types import ServerType

from localcloud.server import LocalCloud, Settings

from ..conftest import TOKEN, new_keypair, qemu_pids, require_qemu
from ..localclouds import LocalClouds


def test_state_dir_keeps_keys_and_snapshots_across_restarts(tmp_path: Path) -> None:
    settings = Settings(
        backend="stub",
        state_dir=tmp_path / "state",
        action_times={"create_image": 0.1, "create_server": 0.1, "start_server": 0.1},
    )
    with LocalCloud(settings) as lc:
        c = Client(token=TOKEN, api_endpoint=lc.endpoint, timeout=10)
        key = c.ssh_keys.create(name="kept", public_key=new_keypair().public_openssh, labels={"a": "b"})
        r = c.servers.create(
            name="s", server_type=ServerType(name="cpx22"), image=Image(name="debian-12"), ssh_keys=[key]
        )
        r.action.wait_until_finished()
        img = c.servers.create_image(r.server, description="kept image", labels={"caph-image-name": "x"})
        img.action.wait_until_finished()
    with LocalCloud(settings) as lc:
        c = Client(token=TOKEN, api_endpoint=lc.endpoint, timeout=10)
        assert [(k.name, k.labels) for k in c.ssh_keys.get_all()] == [("kept", {"a": "b"})]
        [snap] = c.images.get_all(type=["snapshot"])
        assert (snap.description, snap.labels, snap.status) == ("kept image", {"caph-image-name": "x"}, "available")
        assert c.servers.get_all() == []  # servers never survive a restart
        # ids keep counting: nothing new collides with what was kept
        k2 = c.ssh_keys.create(name="new", public_key=new_keypair().public_openssh)
        assert k2.id > key.id


@pytest.fixture
def qemu_ready() -> None:
    require_qemu()


def _serve(state: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "localcloud", "serve", "--backend", "qemu", "--state-dir", str(state)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def _running_server(endpoint: str) -> int:
    c = Client(token=TOKEN, api_endpoint=endpoint, timeout=30)
    r = c.servers.create(name="vm", server_type=ServerType(name="cpx22"), image=Image(name="debian-12"))
    for a in [r.action, *r.next_actions]:
        a.wait_until_finished(max_retries=300)
    assert c.servers.get_by_id(r.server.id).status == "running"
    assert r.server.id is not None
    return r.server.id


@pytest.mark.qemu
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=["SIGTERM", "SIGINT", "SIGKILL"])
def test_no_vm_outlives_localcloud(qemu_ready: None, tmp_path: Path, sig: signal.Signals) -> None:
    state = tmp_path / "state"
    proc, endpoint = _serve(state)
    try:
        sid = _running_server(endpoint)
        vms = qemu_pids(state)
        assert len(vms) == 1
        assert (tmp_path / "state" / "servers" / str(sid) / "disk.qcow2").exists()
        proc.send_signal(sig)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    end = time.monotonic() + 10  # SIGKILL: the kernel delivers PDEATHSIG to QEMU
    while qemu_pids(state) and time.monotonic() < end:
        time.sleep(0.2)
    assert qemu_pids(state) == set()
    if sig != signal.SIGKILL:  # graceful: disks removed on the way out
        assert not (tmp_path / "state" / "servers" / str(sid)).exists()
    else:  # killed: the next start sweeps what the dead one left
        proc2, _ = _serve(tmp_path / "state")
        proc2.send_signal(signal.SIGTERM)
        proc2.wait(timeout=60)
        assert list((tmp_path / "state" / "servers").iterdir()) == []


def test_an_idle_connection_outlives_a_poll_interval(localclouds: LocalClouds) -> None:
    """A client polling every 5 s reuses its pooled connection: it must still be open (uvicorn's
    default keep-alive of 5 s closed it just then, and the next request got "Connection reset by
    peer" — seen by a build's wait and by make parity's)."""
    lc = localclouds.start()
    conn = http.client.HTTPConnection("127.0.0.1", lc.port, timeout=10)
    try:
        for _ in range(2):
            # the same socket both times: http.client reconnects only when it closed it itself
            conn.request("GET", "/v1/locations", headers={"Authorization": f"Bearer {TOKEN}"})
            answer = conn.getresponse()
            assert answer.status == 200
            answer.read()
            time.sleep(6)  # idle longer than uvicorn's default keep-alive
    finally:
        conn.close()
