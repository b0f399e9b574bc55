"""A real ``capi-image build`` process is interrupted in every phase: nothing is leaked.

localcloud (stub machines) runs in the test process; the build is a subprocess, so signals are
delivered exactly as a user's Ctrl-C or a CI cancel would deliver them. Each phase is made to
last a moment (slow actions, slow stand-in commands, delay faults) so the signal lands inside it.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from builder.pipeline.phases import PHASES, STEPS
from localcloud.server import LocalCloud

from ..buildkit import NO_LEAKS, STUB_PROJECT, build_command, cli_env, leftovers, snapshots, write_project
from ..localclouds import LocalClouds

SLOW = {
    "create_server": 1.5,
    "start_server": 0.5,
    "stop_server": 0.5,
    "shutdown_server": 1.5,
    "create_image": 1.5,
    "delete_server": 1.5,
    "guest_shutdown": 0.3,
    "stub_command": 0.4,
}
PHASE_DELAYS = {  # phases without a slow action get a slow API call; a create is then in flight
    "preflight": ("GET", r"^/v1/server_types$"),
    "ssh-key": ("POST", r"^/v1/ssh_keys$"),
    "server": ("POST", r"^/v1/servers$"),
    "publish": ("PUT", r"^/v1/images/\d+$"),
}
# The stub answers every command with nothing, so its boot test always fails: enabled only
# where the boot-test phase itself is under test.
# Phases that create something in the cloud: a signal may cut their create off in flight.
CREATING = {p.name for p in STEPS if "cleanup" in p.undone_by}
WITH_BOOT_TEST = STUB_PROJECT.replace("boot_test: false", "boot_test: true")
assert WITH_BOOT_TEST != STUB_PROJECT


@pytest.fixture
def lc(localclouds: LocalClouds) -> LocalCloud:
    return localclouds.start(action_times=SLOW)


def start_build(tmp: Path, lc: LocalCloud, project: str = STUB_PROJECT) -> subprocess.Popen[str]:
    write_project(tmp / "config", "p", project)
    return subprocess.Popen(
        build_command(tmp),
        env=cli_env(tmp / "config", lc.endpoint),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_event(
    proc: subprocess.Popen[str], wanted: Callable[[dict[str, Any]], bool], what: str, timeout: float = 60
) -> dict[str, Any]:
    """Read the build's JSON log until an event ``wanted`` accepts; return it."""
    assert proc.stderr is not None
    events = []
    end = time.monotonic() + timeout
    for line in proc.stderr:
        if line.startswith("{"):
            ev: dict[str, Any] = json.loads(line)
            events.append(ev)
            if wanted(ev):
                return ev
        assert time.monotonic() < end, f"{what} never happened"
    raise AssertionError(f"build ended before {what}: {events[-3:]}")


def wait_for_phase(proc: subprocess.Popen[str], phase: str, timeout: float = 60) -> dict[str, Any]:
    return wait_for_event(
        proc, lambda ev: ev.get("event") == "phase.start" and ev.get("phase") == phase, f"phase {phase}", timeout
    )


def wait_until(observed: Callable[[], bool], what: str, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while not observed():
        assert time.monotonic() < end, f"{what} never observed"
        time.sleep(0.01)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("phase", PHASES)
def test_interrupt_in_every_phase_leaks_nothing(
    lc: LocalCloud, tmp_path: Path, phase: str, sig: signal.Signals
) -> None:
    if phase in PHASE_DELAYS:
        method, path = PHASE_DELAYS[phase]
        lc.admin().add_fault(method=method, path=path, kind="delay", seconds=1.5)
    proc = start_build(tmp_path, lc, WITH_BOOT_TEST if phase == "boot-test" else STUB_PROJECT)
    try:
        wait_for_phase(proc, phase)
        if phase in PHASE_DELAYS:  # the signal lands while the slow call is being worked on
            wait_until(lambda: lc.admin().in_flight() > 0, f"{phase}'s delayed request")
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    if phase in PHASE_DELAYS:
        # The delayed request is carried out after the client left (as on Hetzner): look only
        # once it has landed, or a leak would go unseen.
        lc.admin().settle()
    manifest = json.loads((tmp_path / "m.json").read_text())
    if phase == "cleanup":
        # Cleanup is shielded: the signal is noted, the build still completes.
        assert proc.returncode == 0, err[-2000:]
        assert "signal.deferred" in err
        assert manifest["result"] == "success"
        assert len(snapshots(lc)) == 1
    else:
        assert proc.returncode == 128 + sig, err[-2000:]
        assert f"interrupted by {sig.name}" in err
        # The signal landed where the test says: the named phase is the last one that ran, and
        # it ended failed (a phase that finished first would make this test prove another one).
        ran = [p for p in manifest["phases"] if p != "cleanup"]
        assert ran[-1] == phase, f"the signal landed in {ran[-1]}, not in {phase}"
        ends = [json.loads(x) for x in err.splitlines() if x.startswith("{") and '"phase.end"' in x]
        assert {"phase": phase, "ok": False} in [{"phase": e["phase"], "ok": e["ok"]} for e in ends]
        assert manifest["result"] == "failure"
        # A create cut off by the signal (its request still on its way) is watched for and
        # deleted, and the build says one may still appear (gc removes it).
        in_flight = phase in CREATING
        assert manifest["cleanup"] == "complete" or (in_flight and manifest["cleanup"].startswith("complete; ")), (
            manifest
        )
        assert bool(manifest["unanswered_creates"]) == manifest["cleanup"].startswith("complete; ")
        assert snapshots(lc) == []
    assert leftovers(lc) == NO_LEAKS


def test_sigkill_leftovers_are_collected_by_gc(lc: LocalCloud, tmp_path: Path) -> None:
    proc = start_build(tmp_path, lc)
    try:
        wait_for_phase(proc, "provision")
        proc.kill()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    left = leftovers(lc)
    assert len(left["servers"]) == 1
    assert len(left["ssh_keys"]) == 1
    env = cli_env(tmp_path / "config", lc.endpoint)
    young = subprocess.run(
        [sys.executable, "-m", "builder.cli", "gc", "-p", "p", "--log-format", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert young.returncode == 0, young.stderr[-2000:]
    assert leftovers(lc) == left  # younger than the default 2h: spared, a build may be running
    assert "younger than" in young.stdout
    gc = subprocess.run(
        [sys.executable, "-m", "builder.cli", "gc", "-p", "p", "--older-than", "0s", "--log-format", "json"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert gc.returncode == 0, gc.stderr[-2000:]
    assert leftovers(lc) == NO_LEAKS
    report = json.loads(gc.stdout)
    assert [i["action"] for i in report].count("deleted") == 2, report


@pytest.mark.parametrize("start", ["shutdown", "cleanup"])
def test_a_signal_storm_cannot_abort_cleanup(lc: LocalCloud, tmp_path: Path, start: str) -> None:
    """SIGINT and SIGTERM every 3 ms from a phase on until the process ends: the first one
    interrupts (outside cleanup), every other one is only counted — no deadlock, no traceback,
    cleanup verified complete, and after a successful build the caller still gets its JSON line."""
    proc = start_build(tmp_path, lc)
    sent = 0
    try:
        wait_for_phase(proc, start)
        end = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < end:
            proc.send_signal(signal.SIGINT if sent % 2 == 0 else signal.SIGTERM)
            sent += 1
            time.sleep(0.003)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert sent > 100, sent
    assert "Traceback" not in err, err[-3000:]
    manifest = json.loads((tmp_path / "m.json").read_text())
    assert manifest["cleanup"].startswith("complete")  # "; …may still appear" after a cut-off create
    if start == "cleanup":
        assert proc.returncode == 0, err[-2000:]
        assert json.loads(out.strip().splitlines()[-1])["snapshot_id"] == manifest["snapshot_id"]
        assert len(snapshots(lc)) == 1
    else:
        assert proc.returncode == 130, err[-2000:]  # the first signal sent was SIGINT
        assert snapshots(lc) == []
    assert leftovers(lc) == NO_LEAKS


def test_a_signal_before_the_cli_is_imported_is_a_clean_exit(tmp_path: Path) -> None:
    """The installed entry point turns an early SIGTERM into exit 143, not a traceback."""
    code = (
        "import os, signal, sys; sys.argv = ['capi-image', '--help']; "
        "from builder import entry; signal.signal(signal.SIGTERM, entry.first_signal_exits); "
        "os.kill(os.getpid(), signal.SIGTERM); entry.main()"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 143, r.stderr
    assert "Traceback" not in r.stderr


def test_a_signal_cuts_a_long_command_short(localclouds: LocalClouds, tmp_path: Path) -> None:
    """A Ctrl-C while a provisioning command runs (an apt step can take ten minutes) stops the
    build at once: invoke waits for a command's output to end before an exception gets through,
    so the build closes the SSH connection when a signal arrives. Exit 130, cleaned up."""
    lc = localclouds.start(action_times={**SLOW, "stub_command": 20.0})
    proc = start_build(tmp_path, lc)
    try:
        wait_for_phase(proc, "provision", timeout=180)
        step = wait_for_event(proc, lambda ev: ev.get("event") == "step.start", "the first step")
        since = dt.datetime.fromisoformat(step["timestamp"]).timestamp()
        sid = lc.admin().state()["servers"][0]["id"]
        # inside the step's first command (each takes 20 s): the stand-in has recorded it
        wait_until(lambda: any(c["time"] >= since for c in lc.admin().ssh_log(sid)), "the step's first command")
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-2000:]
    assert took < 12, f"the build went on for {took:.0f} s after the signal"
    manifest = json.loads((tmp_path / "m.json").read_text())
    assert manifest["cleanup"] == "complete"
    assert leftovers(lc) == NO_LEAKS


def test_a_failing_boot_test_fails_the_build_and_deletes_everything(lc: LocalCloud, tmp_path: Path) -> None:
    """The stub's empty answers fail the boot checks: the snapshot is never published and goes,
    with both servers and both keys."""
    proc = start_build(tmp_path, lc, WITH_BOOT_TEST)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err[-2000:]
    manifest = json.loads((tmp_path / "m.json").read_text())
    assert manifest["result"] == "failure" and manifest["cleanup"] == "complete"
    assert "step 'boot-test'" in manifest["error"] and "boot new machine-id" in manifest["error"]
    assert "step 'boot-test': step 'boot-test'" not in manifest["error"]  # said once
    assert list(manifest["phases"])[-2:] == ["boot-test", "cleanup"]
    assert snapshots(lc) == []
    assert leftovers(lc) == NO_LEAKS


@pytest.mark.parametrize("module", ["builder.entry", "builder.cli"])
@pytest.mark.parametrize("delay", [0.0, 0.01, 0.03, 0.06, 0.1, 0.2, 0.4])
def test_a_signal_while_the_tool_starts_exits_130_without_a_traceback(
    lc: LocalCloud, tmp_path: Path, module: str, delay: float
) -> None:
    """Before: a SIGINT 30-120 ms after exec (the CLI's imports) printed a KeyboardInterrupt
    traceback and exited 1; a SIGTERM right after it decided the exit instead. The first signal
    decides: 130, whatever follows."""
    write_project(tmp_path / "config", "p", STUB_PROJECT)
    cmd = [sys.executable, "-m", module, *build_command(tmp_path)[3:]]
    proc = subprocess.Popen(cmd, env=cli_env(tmp_path / "config", lc.endpoint), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        # From the tool's first instruction (its SIGTERM handler is in place: the interpreter's
        # own start-up before it is Python's, not ours), then a moment into the imports/build.
        _wait_for_handler(proc.pid, signal.SIGTERM)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.005)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err, err[-2000:]
    lc.admin().settle()
    assert leftovers(lc) == NO_LEAKS


def _wait_for_handler(pid: int, sig: signal.Signals, timeout: float = 30) -> None:
    """Until process ``pid`` catches ``sig`` (its SigCgt mask in /proc): an observable moment."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        status = Path(f"/proc/{pid}/status").read_text()
        caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
        if caught & (1 << (sig - 1)):
            return
        time.sleep(0.001)
    raise AssertionError(f"process {pid} never installed a handler for {sig.name}")


def test_exit_3_after_a_publish_still_prints_the_result_line(lc: LocalCloud, tmp_path: Path) -> None:
    """The key cannot be deleted (its DELETE always answers 404): exit 3, but the image is live,
    so stdout still names it. Before: no JSON line, only the manifest said what was published."""
    lc.admin().add_fault(method="DELETE", path=r"^/v1/ssh_keys/\d+$", times=0, code="not_found")
    proc = start_build(tmp_path, lc, STUB_PROJECT.replace("api_action: 30", "api_action: 3"))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err[-2000:]
    line = json.loads(out.strip().splitlines()[-1])
    [snap] = snapshots(lc)
    assert line["snapshot_id"] == snap["id"] and line["caph-image-name"] == snap["labels"]["caph-image-name"]
    lc.admin().clear_faults()
