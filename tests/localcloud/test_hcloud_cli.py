"""Debian's ``hcloud`` CLI (an independent Go client, hcloud-go 1.35) against ``python -m
localcloud serve`` started as a process, the way a user would."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import new_keypair
from ..prereq import require

pytestmark = pytest.mark.cli


@pytest.fixture
def endpoint() -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "localcloud", "serve", "--port", "0", "--backend", "stub",
         "--action-time", "create_server=0.2", "--action-time", "start_server=0.2",
         "--action-time", "create_image=0.3", "--action-time", "guest_shutdown=0.2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line.startswith("http://127.0.0.1:") and line.endswith("/v1"), line
    try:
        yield line
    finally:
        proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught.
        assert proc.wait(timeout=20) in (0, -signal.SIGTERM)
        assert proc.stderr is not None
        assert "no machine is left running" in proc.stderr.read()


def _hcloud(endpoint: str, tmp: Path, *args: str) -> str:
    env = {
        **os.environ,
        "HCLOUD_TOKEN": "cli-token",
        "HCLOUD_ENDPOINT": endpoint,
        "HCLOUD_CONFIG": str(tmp / "none.toml"),
    }
    r = subprocess.run(["hcloud", *args], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"hcloud {' '.join(args)}: {r.stderr}{r.stdout}"
    return r.stdout


def test_hcloud_cli_round_trip(endpoint: str, tmp_path: Path) -> None:
    if shutil.which("hcloud") is None:
        require("Debian's hcloud-cli is not installed")
    key = new_keypair()
    (tmp_path / "k.pub").write_text(key.public_openssh + "\n")
    h = lambda *a: _hcloud(endpoint, tmp_path, *a)  # noqa: E731

    h("ssh-key", "create", "--name", "cli-key", "--public-key-from-file", str(tmp_path / "k.pub"))
    created = h("server", "create", "--name", "cli-server", "--type", "cpx22", "--image", "debian-12",
                "--location", "nbg1", "--ssh-key", "cli-key", "--label", "env=test")  # fmt: skip
    assert "created" in created
    assert re.search(r"IPv4: 127\.0\.\d+\.\d+", created), created

    servers = json.loads(h("server", "list", "-o", "json"))
    assert [s["name"] for s in servers] == ["cli-server"]
    sid = str(servers[0]["id"])
    described = json.loads(h("server", "describe", sid, "-o", "json"))
    assert described["status"] == "running" and described["labels"] == {"env": "test"}
    assert described["datacenter"]["location"]["name"] == "nbg1"

    h("server", "shutdown", sid)
    h("server", "poweroff", sid)
    assert json.loads(h("server", "describe", sid, "-o", "json"))["status"] == "off"

    h("server", "create-image", "--type", "snapshot", "--description", "cli image", "--label", "a=b", sid)
    images = json.loads(h("image", "list", "-t", "snapshot", "-l", "a=b", "-o", "json"))
    assert [i["description"] for i in images] == ["cli image"] and images[0]["status"] == "available"
    iid = str(images[0]["id"])
    h("image", "update", iid, "--description", "renamed")
    h("image", "add-label", iid, "x=y")
    image = json.loads(h("image", "describe", iid, "-o", "json"))
    assert image["description"] == "renamed" and image["labels"] == {"a": "b", "x": "y"}
    assert "debian-12" in h("image", "list", "-t", "system")

    h("server", "delete", sid)  # CLI 1.30 does not wait for the delete action
    h("image", "delete", iid)
    h("ssh-key", "delete", "cli-key")
    deadline = time.monotonic() + 10
    while json.loads(h("server", "list", "-o", "json")):
        assert time.monotonic() < deadline, "server was never deleted"
        time.sleep(0.2)
    # The Go CLI prints an empty list as null.
    assert json.loads(h("image", "list", "-t", "snapshot", "-o", "json")) in ([], None)
    assert json.loads(h("ssh-key", "list", "-o", "json")) in ([], None)
