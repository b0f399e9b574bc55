"""One image build, from preflight to a published snapshot, leak-proof on every exit path.

The phases are ``phases.STEPS``, in order, each a function of the ``Build`` (its methods; the
SBOM in ``outputs.py``, the boot test in ``boottest.py``); ``cleanup`` always runs after them
(``pipeline/cleanup.py``). What a phase creates goes through ``builder.resources``
and is tracked the moment the API names it; everything created carries ``created-by=capi-image``
and ``build-id=<id>``, so a retry, the cleanup and ``capi-image gc`` find it by label even if
the process lost track of it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

import structlog

from .. import log as logmod
from ..caph import CAPH_LABEL
from ..cloud import Cloud
from ..config import ProjectConfig
from ..errors import CleanupIncompleteError, CloudError
from ..interrupts import Interrupted, SignalGuard, StopSignal
from ..keys import KeyPair, host_key_user_data
from ..placement import Placements
from ..resources import CREATED_BY, Resources
from ..ssh import Session
from . import outputs, record
from .cleanup import KeepForDebugging, Tracked, clean_up, controlling_terminal, debug_dir
from .connect import connect, console_hint
from .preflight import ImageSpec, Preflight, caph_matches
from .record import BuildResult, Measurements

log = logmod.get("capi-image.build")


def new_build_id() -> str:
    return secrets.token_hex(4)


class Build:
    def __init__(
        self,
        config: ProjectConfig,
        cloud: Cloud,
        *,
        endpoint: str,
        build_id: str | None = None,
        keep_on_failure: bool = False,
        manifest_path: Path | None = None,
        guard: SignalGuard | None = None,
        boot_test: bool | None = None,
        skip_unchanged: bool = False,
        on_phase: Callable[[str, str], None] | None = None,
        stop: StopSignal | None = None,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        terminal: Callable[[], TextIO | None] | None = None,
    ) -> None:
        self.config = config
        self.cloud = cloud
        self.endpoint = endpoint
        self.build_id = build_id or new_build_id()
        self.keep_on_failure = keep_on_failure
        self.result: BuildResult | None = None  # this build's outcome, once run() started
        self.failed = False  # set before cleanup: whether any phase failed
        self.unanswered = False  # set by cleanup: a create never got its answer (may still appear)
        self.manifest_path = manifest_path or Path("dist") / f"build-{self.build_id}.json"
        self.guard = guard or SignalGuard()
        self.on_phase = on_phase or (lambda _phase, _state: None)
        self.stop = stop
        self.started = now().replace(microsecond=0)
        self.terminal = terminal or controlling_terminal
        self.boot_test_enabled = config.boot_test if boot_test is None else boot_test
        self.skip_unchanged = skip_unchanged
        self.current: Any = None  # with skip_unchanged: the published image this one equals
        # the project's labels too: gc and images of one project never see another's
        self.res = Resources(
            cloud, config.timeouts, {**config.labels, "created-by": CREATED_BY, "build-id": self.build_id}
        )
        self.tracked = Tracked()
        self.measured = Measurements()
        self.login_key = KeyPair.generate()
        self.host_key = KeyPair.generate()
        self.spec: ImageSpec | None = None  # set by preflight
        self.placements: Placements | None = None
        self.session: Session | None = None
        self.build_identity = ("", "")  # machine-id, cloud-init instance-id of the build server
        self._created_at: dict[str, float] = {}  # role -> monotonic time of the create call
        self.log = log.bind(build_id=self.build_id)

    @property
    def resource_name(self) -> str:
        return f"capi-image-{self.build_id}"

    @property
    def image(self) -> ImageSpec:
        assert self.spec is not None, "preflight has not run"
        return self.spec

    # ------------------------------------------------------------------ the run
    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        if self.stop is not None:
            self.stop.check(self.guard)
        t0 = time.monotonic()
        ok = False
        try:
            # Inside the try: a signal landing just after "phase.start" is this phase's failure,
            # recorded as such (it was the previous phase's in the manifest, found by a test).
            self.log.info("phase.start", phase=name)
            self.on_phase(name, "start")
            yield
            ok = True
        finally:
            self.measured.phases[name] = round(time.monotonic() - t0, 3)
            self.log.info("phase.end", phase=name, ok=ok, seconds=self.measured.phases[name])
            self.on_phase(name, "done" if ok else "failed")

    def run(self) -> BuildResult:
        """Build, publish, clean up. Raises on failure (after cleanup); returns the result."""
        structlog.contextvars.bind_contextvars(build_id=self.build_id)
        failure: BaseException | None = None
        result = self.result = BuildResult(self.build_id, ok=False)
        cfg = self.config
        self.log.info(
            "build.start", project=cfg.name, os=cfg.os, server_type=cfg.server_type, location=cfg.location,
            endpoint=self.endpoint,
        )  # fmt: skip
        try:
            from .phases import CLEANUP, STEPS  # the phase table names Build's methods

            for step in STEPS:
                if step.when(self):
                    with self.phase(step.name):
                        step.run(self)
                else:
                    self.on_phase(step.name, "skipped")
            result.ok = True
        except BaseException as e:
            failure = e
            result.error = logmod.scrub(str(e))
            self.log.error("build.failed", error=result.error, kind=type(e).__name__)
        finally:
            try:
                # From here on a signal is only noted (SignalGuard): set first thing, and a signal
                # that lands on the way in is the build's failure, not a skipped cleanup.
                self.guard.finishing = True
            except Interrupted as late:
                failure = failure or late
                result.error = result.error or str(late)
            cleanup_error: BaseException | None = None
            self.failed = failure is not None
            with self.guard.shield():
                try:
                    with self.phase(CLEANUP.name):
                        CLEANUP.run(self)
                except BaseException as e:  # never mask the build's own failure
                    cleanup_error = e
                    self.log.error("cleanup.incomplete", error=logmod.scrub(str(e)))
                if self.tracked.published and self.spec is not None:
                    result.image_id, result.image_name = self.tracked.image_id, self.spec.name
                    result.labels = self.image.published_labels
                elif result.ok and self.current is not None:  # unchanged: the current image stands
                    result.unchanged = True
                    result.image_id, result.image_name = self.current.id, self.current.labels[CAPH_LABEL]
                    result.labels = dict(self.current.labels)
                result.unanswered_create = self.unanswered
                result.manifest = self.write_manifest(result, cleanup_error)
            structlog.contextvars.unbind_contextvars("build_id")
        if cleanup_error is not None:
            # Leftovers outrank the build's own failure: the caller must hear "run gc".
            detail = f"{result.error}; then cleanup: {cleanup_error}" if failure is not None else str(cleanup_error)
            raise CleanupIncompleteError(detail) from cleanup_error
        if failure is not None:
            if self.unanswered:
                failure.add_note(record.late_create_note(self.config.gc_command(self.build_id)))
            raise failure
        self.log.info("build.done", image_id=result.image_id, caph_image_name=result.image_name)
        return result

    # ------------------------------------------------------------------ phases
    def preflight(self) -> None:
        """Everything checked before money is spent; see pipeline/preflight.py."""
        found = Preflight(
            self.config, self.cloud, endpoint=self.endpoint, build_id=self.build_id, started=self.started
        ).run(dict(self.res.labels))
        for warning in found.placements.warnings:
            self.log.warning("preflight.deprecation", note=warning)
        self.spec, self.placements = found.spec, found.placements
        self.log.info(
            "preflight.ok", image_name=self.spec.name, base_image=self.spec.base_image_id, arch=self.spec.architecture
        )

    def create_ssh_key(self) -> None:
        self.tracked.ssh_key_id = self.res.upload_key("build", self.resource_name, self.login_key)

    def create_server(self) -> None:
        assert self.tracked.ssh_key_id is not None
        self.tracked.server_ip = self.launch(
            "build", self.resource_name, self.image.base_image_id, self.tracked.ssh_key_id, self.host_key
        )

    def wait_for_ssh(self) -> None:
        assert self.tracked.server_ip is not None
        self.session = self.connect_to(
            self.tracked.server_ip, self.login_key, self.host_key, "build", self.tracked.server_id
        )

    def provision(self) -> None:
        assert self.session is not None
        # Remembered so the boot test can tell a new machine from a copy of this one.
        _, ident = self.session.probe(
            "cat /etc/machine-id 2>/dev/null; echo; cat /var/lib/cloud/data/instance-id 2>/dev/null; echo",
            step="identity",
        )
        lines = [*ident.splitlines(), "", ""]
        self.build_identity = (lines[0].strip(), lines[1].strip())
        self.measured.steps = self.session.run_plan(self.image.plan, timeout=self.config.timeouts.step)
        used = self.session.run("df -B1 --output=used / | tail -n 1", step="measure").strip()
        self.measured.root_used_bytes = int(used) if used.isdigit() else None

    @property
    def changed(self) -> bool:
        return self.current is None

    def shutdown(self) -> None:
        assert self.tracked.server_id is not None
        if self.session is not None:
            self.session.close()
        self.res.shut_down(self.tracked.server_id)

    def snapshot(self) -> None:
        assert self.tracked.server_id is not None

        def track(image_id: int) -> None:
            self.tracked.image_id = image_id

        img = self.res.snapshot(
            self.tracked.server_id, description=self.image.name, labels=dict(self.image.labels), track=track
        )
        self.measured.image_size_gb = img.image_size

    def publish(self) -> None:
        """Only now does the snapshot get the label CAPH resolves: CAPH does not look at image
        status, so a labelled snapshot still `creating` could be picked up too early."""
        assert self.tracked.image_id is not None
        spec = self.image
        clash = caph_matches(self.cloud, spec.name, spec.architecture, exclude=self.tracked.image_id, by_name=False)
        if clash:
            raise CloudError("publish", f"{CAPH_LABEL} '{spec.name}' appeared on image(s) {clash} meanwhile")
        published = self.res.relabel(self.tracked.image_id, labels=spec.published_labels, description=spec.name)
        self.tracked.published = True
        self.measured.image_size_gb = published.image_size or self.measured.image_size_gb
        self.log.info("snapshot.published", image_id=self.tracked.image_id, caph_image_name=spec.name)
        outputs.write_provenance(self)

    def cleanup_phase(self) -> None:
        self.cleanup(failed=self.failed)

    def cleanup(self, *, failed: bool) -> None:
        if self.session is not None:
            self.session.close()
        keep = None
        if self.keep_on_failure:
            keep = KeepForDebugging(
                debug_dir(self.build_id),
                self.login_key,
                self.build_id,
                self.config.gc_command(self.build_id),
                self.terminal,
            )
        self.unanswered = clean_up(
            self.res,
            self.tracked,
            failed=failed,
            build_id=self.build_id,
            gc_command=self.config.gc_command(self.build_id),
            keep=keep,
        )

    # ------------------------------------------------------------------ helpers
    def launch(self, role: str, name: str, image_id: int, key_id: int, host: KeyPair) -> str:
        assert self.placements is not None

        def track(sid: int) -> None:
            if role == "build":
                self.tracked.server_id = sid
            else:
                self.tracked.boot_server_id = sid

        self._created_at[role] = time.monotonic()
        _, ip = self.res.launch(
            role, name, image_id=image_id, key_id=key_id, user_data=host_key_user_data(host),
            placements=self.placements, track=track,
        )  # fmt: skip
        return ip

    def connect_to(self, ip: str, login: KeyPair, host: KeyPair, role: str, server_id: int | None) -> Session:
        def answered() -> None:
            created = self._created_at.get(role)
            if created is not None:  # seconds from the create call until SSH answered
                self.measured.ssh_ready_seconds[role] = round(time.monotonic() - created, 1)
            seconds = self.measured.ssh_ready_seconds.get(role)
            self.log.info("ssh.connected", ip=ip, role=role, seconds_since_create=seconds)

        hint = self.console_hint_for(server_id)
        return connect(
            self.cloud, self.config.timeouts, ip, login, host, hint=hint, answered=answered, stopping=self._stopping
        )

    def _stopping(self) -> int | None:
        """The signal that stops this build, once one arrived (the process's, or a matrix's)."""
        if self.guard.received is not None and not self.guard.finishing:
            return self.guard.received
        if self.stop is not None and self.stop.is_set():
            return self.stop.signum
        return None

    def console_hint_for(self, server_id: int | None) -> str:
        if self.config.endpoint != "localcloud" or server_id is None:
            return ""
        return console_hint(self.endpoint, self.config.localcloud.state_dir, server_id)

    def write_manifest(self, result: BuildResult, cleanup_error: BaseException | None) -> dict[str, object]:
        if self.session is not None:
            self.measured.steps = list(self.session.timings)
        manifest = record.manifest_document(
            config=self.config, build_id=self.build_id, started=self.started, result=result,
            cleanup_error=cleanup_error, spec=self.spec, placements=self.placements, measured=self.measured,
            counter=self.cloud.counter, architecture=self.config.architecture or "x86",
            counter_unanswered=[*self.cloud.unanswered, *(["a create cut off by a signal"] if self.res.in_flight else [])],
        )  # fmt: skip
        record.write(self.manifest_path, manifest)
        self.log.info("manifest.written", path=str(self.manifest_path))
        return manifest


__all__ = ["Build", "BuildResult", "new_build_id"]
