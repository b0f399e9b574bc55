"""The executor: runs a provision plan over one Fabric (paramiko) connection.

The host key is pinned to the one injected through cloud-init; Fabric's default AutoAddPolicy
is replaced by RejectPolicy and no known_hosts or ssh_config is read. Every output line is
logged with its step name; each step's duration is recorded.
"""

from __future__ import annotations

import io
import logging
import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import fabric
import paramiko
from invoke.exceptions import CommandTimedOut, ThreadException, UnexpectedExit

from provision.plan import COUNTED_OUTPUT, Check, Plan, Put, Run, Step

from . import batch
from . import log as logmod
from .errors import ProvisionError
from .interrupts import Interrupted
from .keys import KeyPair

log = logmod.get("capi-image.ssh")
# Refused connections while a guest boots are expected; paramiko would log each as an ERROR.
logging.getLogger("paramiko").setLevel(logging.CRITICAL)


class _LineLogger(io.TextIOBase):
    """A stream for invoke's out_stream/err_stream that logs whole lines."""

    def __init__(self, step: str, stream: str, hide: str = "") -> None:
        self.step, self.stream, self.buf, self.hide = step, stream, "", hide
        self.tail: list[str] = []
        self.counted: dict[str, int] = {}

    def write(self, s: str) -> int:
        self.buf += s
        while "\n" in self.buf:
            line, self.buf = self.buf.split("\n", 1)
            self._emit(line)
        return len(s)

    def _emit(self, line: str) -> None:
        if self.hide and line.startswith(self.hide):
            return  # a batch's marker line (builder/batch.py): not the commands' output
        self.tail = [*self.tail, line][-20:]
        for name, pattern in COUNTED_OUTPUT.items():
            if pattern.search(line):
                self.counted[name] = self.counted.get(name, 0) + 1
        log.info("step.output", step=self.step, stream=self.stream, line=line)

    def flush(self) -> None:
        if self.buf:
            self._emit(self.buf)
            self.buf = ""


@dataclass
class StepTiming:
    name: str
    seconds: float
    ok: bool
    # Seconds of this step spent in commands of each kind (apt, initramfs, download): where
    # the next bottleneck is, from one build's manifest.
    by_kind: dict[str, float] = field(default_factory=dict)
    # How often a counted output line appeared (e.g. initramfs generations).
    counted: dict[str, int] = field(default_factory=dict)

    def record(self) -> dict[str, object]:
        return {"name": self.name, "seconds": self.seconds, "ok": self.ok, "by_kind": self.by_kind, **self.counted}


@dataclass
class Session:
    """One SSH session to the build server."""

    host: str
    login: KeyPair
    host_key: KeyPair
    port: int = 22
    connect_timeout: float = 15
    timings: list[StepTiming] = field(default_factory=list)
    round_trips: int = 0  # commands and file writes sent over SSH
    conn: fabric.Connection | None = None
    # The signal that stops the build, once one arrived (None: keep going). A running command
    # is cut off then: invoke waits for a command's output to end before it lets an exception
    # through, so without this a Ctrl-C waited out a 10-minute apt step.
    stopping: Callable[[], int | None] | None = None

    def _connection(self) -> fabric.Connection:
        config = fabric.Config(overrides={"load_ssh_configs": False, "run": {"hide": True, "warn": True}})
        conn = fabric.Connection(
            self.host,
            user="root",
            port=self.port,
            config=config,
            connect_timeout=int(self.connect_timeout),
            connect_kwargs={
                "pkey": self.login.paramiko(),
                "look_for_keys": False,
                "allow_agent": False,
                "banner_timeout": 30,
            },
        )
        conn.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        hostname = self.host if self.port == 22 else f"[{self.host}]:{self.port}"
        conn.client.get_host_keys().add(hostname, "ssh-ed25519", self.host_key.paramiko())
        return conn

    def try_connect(self) -> bool:
        """One attempt; False while the guest is not answering yet."""
        conn = self._connection()
        try:
            conn.open()
        except paramiko.BadHostKeyException:
            raise  # never retried: someone else answers on that address
        except (OSError, paramiko.SSHException, EOFError) as e:
            log.debug("ssh.not_yet", host=self.host, error=str(e))
            conn.close()
            return False
        conn.transport.set_keepalive(15)
        self.conn = conn
        return True

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def run(
        self,
        command: str,
        *,
        step: str = "ssh",
        timeout: float | None = None,
        env: dict[str, str] | None = None,
        counted: dict[str, int] | None = None,
    ) -> str:
        """Run one command as root; raise ProvisionError on a non-zero exit or a dropped link.
        ``counted`` adds up the counted output lines (``COUNTED_OUTPUT``) the command printed."""
        return self._exec(command, step=step, timeout=timeout, env=env, check=True, counted=counted)[1]

    def probe(self, command: str, *, step: str, timeout: float | None = None) -> tuple[int, str]:
        """Run a read-only command; its exit code is data, not an error."""
        return self._exec(command, step=step, timeout=timeout, env=None, check=False)

    def _exec(
        self,
        command: str,
        *,
        step: str,
        timeout: float | None,
        env: dict[str, str] | None,
        check: bool,
        counted: dict[str, int] | None = None,
        hide: str = "",
        what: Callable[[str], str] | None = None,
    ) -> tuple[int, str]:
        """``what(stdout)`` names the command that failed (a batch's), for the error."""
        assert self.conn is not None, "not connected"
        out, err = _LineLogger(step, "stdout", hide), _LineLogger(step, "stderr", hide)
        script = command
        if env:
            exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
            script = exports + command
        self.round_trips += 1
        watchdog = _Watchdog(self.conn, self.stopping) if self.stopping is not None else None
        try:
            result = self.conn.run(
                f"bash --norc --noprofile -euo pipefail -c {shlex.quote(script)}",
                out_stream=out,
                err_stream=err,
                timeout=timeout,
                in_stream=False,
            )
        except UnexpectedExit as e:  # pragma: no cover - warn=True returns instead
            result = e.result
        except (TimeoutError, OSError, EOFError, paramiko.SSHException) as e:
            raise ProvisionError(step, f"SSH connection to {self.host} dropped: {type(e).__name__}: {e}") from e
        except (ThreadException, CommandTimedOut) as e:  # invoke wraps a dead channel's thread failure
            raise ProvisionError(step, f"SSH connection to {self.host} failed: {e}") from e
        finally:
            if watchdog is not None:
                watchdog.finish()
            out.flush()
            err.flush()
            if counted is not None:
                for stream in (out, err):
                    for name, n in stream.counted.items():
                        counted[name] = counted.get(name, 0) + n
        if self.stopping is not None and (signum := self.stopping()) is not None:
            raise Interrupted(signum)
        transport = self.conn.client.get_transport()
        failed = (what(str(result.stdout)) if what else command).splitlines()[0][:120]
        if result.exited == -1 or transport is None or not transport.is_active():
            # paramiko reports -1 when the channel closed without an exit status.
            raise ProvisionError(step, f"SSH connection to {self.host} dropped while running: {failed}")
        if check and result.exited != 0:
            tail = "\n".join(err.tail[-5:] or out.tail[-5:])
            raise ProvisionError(step, f"command exited {result.exited}: {failed}\n{tail}")
        return int(result.exited), str(result.stdout)

    def put(self, op: Put, *, step: str) -> None:
        """Write a file atomically; content goes over stdin, so any size and bytes work."""
        assert self.conn is not None
        transport = self.conn.client.get_transport()
        if transport is None or not transport.is_active():
            raise ProvisionError(step, f"SSH connection to {self.host} dropped")
        path = shlex.quote(op.path)
        tmp = shlex.quote(op.path + ".capi-image.tmp")
        cmd = f'mkdir -p "$(dirname {path})" && cat > {tmp} && chmod {op.mode:o} {tmp} && mv -f {tmp} {path}'
        try:
            self.round_trips += 1
            chan = transport.open_session(timeout=self.connect_timeout)
            # A guest that stops reading or answering (a full disk, a hung shell) must not hang
            # the build: a minute, or longer for a large file at 100 kB/s.
            limit = max(60.0, len(op.content) / 100_000)
            chan.settimeout(limit)
            chan.exec_command(cmd)
            chan.sendall(op.content)
            chan.shutdown_write()
            if not chan.status_event.wait(limit):
                chan.close()
                raise ProvisionError(step, f"writing {op.path}: no answer from {self.host} after {limit:.0f}s")
            status = chan.recv_exit_status()
            err = chan.makefile_stderr("rb").read().decode(errors="replace")
            chan.close()
        except (OSError, EOFError, paramiko.SSHException) as e:
            raise ProvisionError(step, f"SSH connection to {self.host} dropped while writing {op.path}: {e}") from e
        if status != 0:
            raise ProvisionError(step, f"writing {op.path} failed ({status}): {err.strip()}")

    def run_step(self, step: Step, *, timeout: float) -> StepTiming:
        log.info("step.start", step=step.name, description=step.description)
        t0 = time.monotonic()
        ok = False
        failed: list[str] = []
        by_kind: dict[str, float] = {}
        counted: dict[str, int] = {}
        try:
            for group in batch.groups(step.operations):
                first = group[0]
                if isinstance(first, Put):
                    self.put(first, step=step.name)
                elif isinstance(first, Run):
                    started = time.monotonic()
                    try:
                        self._run_batch([op for op in group if isinstance(op, Run)], step.name, timeout, counted)
                    finally:
                        if first.kind:
                            by_kind[first.kind] = round(by_kind.get(first.kind, 0.0) + time.monotonic() - started, 3)
                else:
                    failed += self._check_batch([op for op in group if isinstance(op, Check)], step.name, timeout)
            if failed:
                raise ProvisionError(step.name, f"{len(failed)} check(s) failed: " + "; ".join(failed))
            ok = True
        finally:
            timing = StepTiming(step.name, round(time.monotonic() - t0, 3), ok, by_kind, counted)
            self.timings.append(timing)
            log.info("step.end", step=step.name, ok=ok, seconds=timing.seconds)
        return timing

    def _run_batch(self, runs: list[Run], step: str, timeout: float, counted: dict[str, int]) -> None:
        """Consecutive commands with the same environment as one SSH command (builder/batch.py)."""
        if len(runs) == 1:
            self.run(runs[0].command, step=step, timeout=timeout, env=runs[0].env or None, counted=counted)
            return
        mark = batch.boundary()
        commands = [r.command for r in runs]

        def what(stdout: str) -> str:
            index = batch.failed_index(stdout, mark)
            return commands[index] if index is not None else f"one of {len(commands)} commands: {commands[0]}"

        script = batch.runs_script(commands, mark)
        self._exec(
            script,
            step=step,
            timeout=timeout,
            env=runs[0].env or None,
            check=True,
            counted=counted,
            hide=mark,
            what=what,
        )

    def _check_batch(self, checks: list[Check], step: str, timeout: float) -> list[str]:
        """Every check of a run of consecutive checks in one SSH command; the problems found."""
        mark = batch.boundary()
        _, stdout = self._exec(
            batch.checks_script([c.command for c in checks], mark),
            step=step,
            timeout=timeout,
            env=None,
            check=False,
            hide=mark,
            what=lambda _: f"{len(checks)} checks",
        )
        problems = []
        for check, result in zip(checks, batch.check_results(stdout, mark, len(checks)), strict=True):
            problem = "not run" if result is None else check.judge(result.exit_code, result.output)
            log.info("check", step=step, check=check.name, ok=problem is None, problem=problem)
            if problem:
                problems.append(f"{check.name}: {problem}")
        return problems

    def run_plan(self, plan: Plan, *, timeout: float) -> list[StepTiming]:
        for step in plan.steps:
            self.run_step(step, timeout=timeout)
        return self.timings


class _Watchdog:
    """While one command runs: when ``stopping`` names a signal, close the SSH transport, so the
    command's output ends and the interruption reaches the build at once (its cleanup deletes
    the server; nothing more is sent to it)."""

    POLL = 0.25

    def __init__(self, conn: fabric.Connection, stopping: Callable[[], int | None]) -> None:
        self.conn, self.stopping = conn, stopping
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="ssh-watchdog", daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        while not self.done.wait(self.POLL):
            if self.stopping() is not None:
                transport = self.conn.client.get_transport()
                if transport is not None:
                    transport.close()
                return

    def finish(self) -> None:
        self.done.set()
        self.thread.join()
