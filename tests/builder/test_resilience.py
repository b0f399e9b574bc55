"""SSH dropping mid-provision, secrets in logs, and the SDK internals the builder relies on."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import pytest
from hcloud import Client

from builder import log as logmod
from builder.cloud import make_client
from builder.errors import ProvisionError
from localcloud.server import LocalCloud

from ..buildkit import (
    BUILD_TIMES,
    NO_LEAKS,
    STUB_PROJECT,
    build_command,
    leftovers,
    project,
    run_build,
    run_cli,
    snapshots,
    stub_cloud,
    write_project,
)
from ..localclouds import LocalClouds


@pytest.fixture
def lc(localclouds: LocalClouds) -> LocalCloud:
    return localclouds.start(action_times={**BUILD_TIMES, "stub_command": 0.3})


def test_ssh_dropped_mid_provision_fails_cleanly(lc: LocalCloud, tmp_path: Path) -> None:
    """The server dies under the build (hard power-off): a clear error, then full cleanup."""
    killer = Client(token="other", api_endpoint=lc.endpoint, timeout=10)

    def on_phase(phase: str, state: str) -> None:
        if phase == "provision" and state == "start":
            sid = lc.admin().state()["servers"][0]["id"]
            threading.Timer(0.5, lambda: killer.servers.power_off(killer.servers.get_by_id(sid))).start()

    out = run_build(lc, project(lc.endpoint), tmp_path, on_phase=on_phase)
    assert isinstance(out.error, ProvisionError), out.error
    assert "dropped" in str(out.error) or "failed" in str(out.error)
    assert out.error.step in ("identity", "provenance", "sysprep")  # wherever the power-off lands
    assert out.manifest["result"] == "failure"
    assert out.manifest["cleanup"] == "complete"
    assert leftovers(lc) == NO_LEAKS
    assert snapshots(lc) == []


SECRET = "hc-tok-SECRET-4242-do-not-log"


def test_token_never_reaches_logs_output_or_manifest(tmp_path: Path) -> None:
    with stub_cloud() as lc:
        write_project(tmp_path / "config", "p", STUB_PROJECT)
        r = run_cli(build_command(tmp_path), tmp_path / "config", lc.endpoint, token=SECRET)
        assert r.returncode == 0, r.stderr[-2000:]
        assert SECRET not in r.stdout + r.stderr
        assert SECRET not in (tmp_path / "m.json").read_text()
        events = [json.loads(line) for line in r.stderr.splitlines() if line.startswith("{")]
        assert events
        assert all(e.get("build_id") for e in events if e["event"].startswith(("phase.", "build.")))


def test_redaction_covers_exceptions_and_tracebacks() -> None:
    buf = io.StringIO()
    logmod.configure("json", stream=buf)
    logmod.redact(SECRET)
    try:
        try:
            raise RuntimeError(f"request with Authorization: Bearer {SECRET} failed")
        except RuntimeError as e:
            logmod.get().exception("boom", error=e, nested={"headers": [f"Bearer {SECRET}"]})
    finally:
        logmod.forget_secrets()
    text = buf.getvalue()
    assert "boom" in text
    assert "Bearer ***" in text
    assert SECRET not in text


def test_sdk_retries_are_off_and_requests_are_counted(lc: LocalCloud) -> None:
    """make_client reaches into hcloud-python's private ClientBase; prove it still works."""
    client, counter = make_client("t", lc.endpoint)
    lc.admin().add_fault(method="GET", path=r"^/v1/locations$", code="conflict")  # the SDK would retry this
    with pytest.raises(Exception, match="conflict"):
        client.locations.get_all()
    client.server_types.get_all()
    assert counter.total == 2
    assert counter.by_call == {"GET /v1/locations": 1, "GET /v1/server_types": 1}
