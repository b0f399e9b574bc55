"""Operations around a build: a lying create_image action, --keep-on-failure, gc over many
pages, the images listing, and the build id on every log event."""

from __future__ import annotations

import datetime as dt
import io
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import paramiko
import pytest
from hcloud import Client

from builder.cloud import Cloud, RequestCounter, make_client
from builder.config import Retry
from builder.keys import KeyPair
from builder.ops.gc import collect, parse_duration
from localcloud.server import LocalCloud

from ..buildkit import (
    BUILD_TIMES,
    FAST_RETRY,
    NO_LEAKS,
    STUB_PROJECT,
    build_command,
    leftovers,
    project,
    run_build,
    run_cli,
    snapshots,
    write_project,
)
from ..localclouds import LocalClouds


@pytest.fixture
def lc(localclouds: LocalClouds) -> LocalCloud:
    return localclouds.start(action_times=BUILD_TIMES)


def test_create_image_action_error_with_a_good_snapshot_succeeds(lc: LocalCloud, tmp_path: Path) -> None:
    lc.admin().add_fault(method="POST", path=r"/actions/create_image$", kind="action_error", effect=True)
    out = run_build(lc, project(lc.endpoint), tmp_path)
    assert out.error is None, out.error
    [snap] = snapshots(lc)
    assert snap["status"] == "available"
    assert "caph-image-name" in snap["labels"]
    assert leftovers(lc) == NO_LEAKS


def test_keep_on_failure_keeps_the_server_and_says_how_to_reach_it(
    lc: LocalCloud, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    lc.admin().add_fault(method="POST", path=r"/actions/create_image$", kind="action_error")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))

    class Terminal(io.StringIO):  # a stand-in for /dev/tty that keeps what was written
        def close(self) -> None:
            self.seen = self.getvalue()

    tty = Terminal()
    out = run_build(lc, project(lc.endpoint), tmp_path, keep_on_failure=True, terminal=lambda: tty)
    assert out.error is not None
    printed = capsys.readouterr().out
    assert "ssh -i" in printed and "key passphrase: shown on the terminal only" in printed
    assert f"capi-image gc --project test --build-id {out.build_id} --older-than 0s" in printed
    assert leftovers(lc)["servers"] == [f"capi-image-{out.build_id}"]
    # in the user's state directory, not the working directory a CI job may upload
    key_file = tmp_path / "state" / "capi-image" / "debug" / out.build_id / "id_ed25519"
    assert key_file.stat().st_mode & 0o777 == 0o600
    passphrase = tty.seen.split("key passphrase: ")[1].split(")")[0]
    assert passphrase not in printed
    with pytest.raises(paramiko.PasswordRequiredException):
        paramiko.Ed25519Key.from_private_key_file(str(key_file))  # never on disk unencrypted
    paramiko.Ed25519Key.from_private_key_file(str(key_file), password=passphrase)
    assert snapshots(lc) == []  # the unpublished snapshot is never kept
    client, counter = make_client("t", lc.endpoint)
    report = collect(Cloud(client, counter, FAST_RETRY), dt.timedelta(0), build_id=out.build_id)
    assert report.failed == []
    assert leftovers(lc) == NO_LEAKS


def test_keep_on_failure_without_a_terminal_leaves_the_passphrase_to_this_user_only(
    lc: LocalCloud, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """In CI there is no terminal: before, the passphrase was never shown and the kept server
    could not be reached. Now it is in a file only this user can read, never in the output."""
    lc.admin().add_fault(method="POST", path=r"/actions/create_image$", kind="action_error")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    out = run_build(lc, project(lc.endpoint), tmp_path, keep_on_failure=True, terminal=lambda: None)
    assert out.error is not None
    printed = capsys.readouterr().out
    folder = tmp_path / "state" / "capi-image" / "debug" / out.build_id
    secret = folder / "passphrase"
    assert f"key passphrase: in {secret}, readable by this user only" in printed
    assert secret.stat().st_mode & 0o777 == 0o600 and folder.stat().st_mode & 0o777 == 0o700
    passphrase = secret.read_text().strip()
    assert passphrase and passphrase not in printed
    paramiko.Ed25519Key.from_private_key_file(str(folder / "id_ed25519"), password=passphrase)
    client, counter = make_client("t", lc.endpoint)
    assert collect(Cloud(client, counter, FAST_RETRY), dt.timedelta(0), build_id=out.build_id).failed == []
    assert leftovers(lc) == NO_LEAKS


def test_gc_reads_every_page_and_spares_other_resources(lc: LocalCloud) -> None:
    client = Client(token="t", api_endpoint=lc.endpoint, timeout=10)
    for i in range(57):  # more than one page of 50
        client.ssh_keys.create(
            name=f"old-{i}",
            public_key=KeyPair.generate().public_openssh,
            labels={"created-by": "capi-image", "build-id": f"b{i}"},
        )
    client.ssh_keys.create(name="someone-elses", public_key=KeyPair.generate().public_openssh)
    api, counter = make_client("t", lc.endpoint)
    dry = collect(Cloud(api, counter, FAST_RETRY), dt.timedelta(0), dry_run=True)
    assert len(dry.having("would delete")) == 57 and dry.deleted == []
    assert {i.kind for i in dry.items} == {"SSH key"} and dry.items[0].as_dict().keys() == {
        "kind",
        "id",
        "name",
        "action",
        "reason",
    }
    assert len(client.ssh_keys.get_all()) == 58
    report = collect(Cloud(api, counter, FAST_RETRY), dt.timedelta(0))
    assert len(report.deleted) == 57
    assert [k.name for k in client.ssh_keys.get_all()] == ["someone-elses"]


def test_parse_duration() -> None:
    assert parse_duration("90s") == dt.timedelta(seconds=90)
    assert parse_duration("2h") == dt.timedelta(hours=2)
    assert parse_duration("1d12h") == dt.timedelta(hours=36)
    assert parse_duration("1.5h") == dt.timedelta(minutes=90)
    for bad in ("soon", "-2h", ""):
        with pytest.raises(ValueError, match="not a duration"):
            parse_duration(bad)
    with pytest.raises(ValueError, match="longer than"):
        parse_duration("99999999d")


def test_images_lists_our_snapshots(lc: LocalCloud, tmp_path: Path) -> None:
    assert run_build(lc, project(lc.endpoint), tmp_path).error is None
    write_project(tmp_path / "config", "p", STUB_PROJECT)
    r = run_cli(
        [sys.executable, "-m", "builder.cli", "images", "-p", "p", "-o", "json"], tmp_path / "config", lc.endpoint
    )
    assert r.returncode == 0, r.stderr
    [row] = json.loads(r.stdout)
    assert row["caph-image-name"].startswith("cluster-api-ubuntu-2404-v1.31.4-")
    assert row["status"] == "available"


def test_every_log_event_of_a_build_carries_the_build_id(lc: LocalCloud, tmp_path: Path) -> None:
    write_project(tmp_path / "config", "p", STUB_PROJECT)
    r = run_cli(build_command(tmp_path), tmp_path / "config", lc.endpoint)
    assert r.returncode == 0, r.stderr[-2000:]
    events = [json.loads(line) for line in r.stderr.splitlines() if line.startswith("{")]
    build_id = json.loads((tmp_path / "m.json").read_text())["build_id"]
    assert {e.get("build_id") for e in events} == {build_id}
    assert any(e["event"] == "step.output" or e["event"] == "step.end" for e in events)


def test_an_action_stuck_at_99_percent_is_not_hammered() -> None:
    """An action that overruns its estimate reports 99 % until it ends (localcloud does, when a
    VM takes longer than modelled; so can Hetzner). The wait backs off instead of polling the
    estimate's 0.2 s floor: before this, a 30 s overrun cost ~150 requests of the hourly budget.
    The client is a stand-in (no HTTP): only it can hold an action at 99 % for a chosen time; the
    real-VM ``make image`` test bounds the same thing against localcloud (``api_requests``)."""
    t0 = time.monotonic()
    looks: list[float] = []

    def stand_in_get_by_id(action_id: int) -> SimpleNamespace:
        elapsed = time.monotonic() - t0
        looks.append(elapsed)
        if elapsed >= 2.5:
            return SimpleNamespace(status="success", progress=100, error=None, command="start_server")
        return SimpleNamespace(status="running", progress=99 if elapsed > 0.1 else 0, error=None, command="x")

    client = SimpleNamespace(actions=SimpleNamespace(get_by_id=stand_in_get_by_id))
    cloud = Cloud(client, RequestCounter(), Retry(attempts=1), poll_initial=0.5)
    assert cloud.wait_action("start server", 1, deadline=30)["status"] == "success"
    assert len(looks) <= 6, [round(t, 2) for t in looks]  # the 0.2 s floor would take ~12
