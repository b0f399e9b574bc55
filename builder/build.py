"""One image build, from preflight to a published snapshot, leak-proof on every exit path.

Order (each a phase in the log and the manifest): preflight → ssh-key → server → ssh →
provision → shutdown → snapshot → publish, then cleanup, which always runs. Everything created
carries ``created-by=capi-image`` and ``build-id=<id>``, so a retry, the cleanup and
``capi-image gc`` find it by label even if the process lost track of it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import structlog
from hcloud import APIException
from hcloud.helpers.labels import LabelValidator
from hcloud.images import BoundImage, Image
from hcloud.locations import Location
from hcloud.server_types import BoundServerType, ServerType
from hcloud.servers import BoundServer, Server
from hcloud.ssh_keys import BoundSSHKey, SSHKey

from provision.bootcheck import boot_checks
from provision.options import RecipeContext
from provision.plan import Plan, Step
from provision.versions import IMAGE_BUILDER_VERSION, Versions, VersionsError, load_versions

from . import __version__, placement
from . import log as logmod
from .caph import CAPH_LABEL, caph_images
from .cloud import Cloud, CloudError
from .config import ConfigError, ProjectConfig
from .interrupts import Interrupted, SignalGuard, StopSignal
from .keys import KeyPair, host_key_user_data
from .localmirror import LocalMirror, MirrorUnavailableError, admin_base
from .localmirror import lookup as lookup_local_mirror
from .planning import recipe_context, render
from .ssh import ProvisionError, Session

log = logmod.get("capi-image.build")

CREATED_BY = "capi-image"
# Go's time layout 2006-01-02T15-04-05Z, as image-builder's build_date / creationTimestamp labels.
UPSTREAM_TIME = "%Y-%m-%dT%H-%M-%SZ"
PHASES = (
    "preflight",
    "ssh-key",
    "server",
    "ssh",
    "provision",
    "shutdown",
    "snapshot",
    "boot-test",
    "publish",
    "cleanup",
)


class PreflightError(ConfigError):
    """The build would fail or do harm; found before anything was created."""


class CleanupIncompleteError(RuntimeError):
    """Something this build created could not be deleted; `capi-image gc` will find it."""


def controlling_terminal() -> TextIO | None:
    """The process's terminal for writing (where a secret may be shown), or None."""
    try:
        return open("/dev/tty", "w")
    except OSError:
        return None


def new_build_id() -> str:
    return secrets.token_hex(4)


@dataclass
class Tracked:
    ssh_key_id: int | None = None
    server_id: int | None = None
    server_ip: str | None = None
    image_id: int | None = None
    published: bool = False
    boot_server_id: int | None = None
    boot_key_id: int | None = None


@dataclass
class BuildResult:
    build_id: str
    ok: bool
    image_id: int | None = None
    image_name: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    manifest: dict[str, Any] = field(default_factory=dict)


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
        self.manifest_path = manifest_path or Path("dist") / f"build-{self.build_id}.json"
        self.guard = guard or SignalGuard()
        self.on_phase = on_phase or (lambda _phase, _state: None)
        self.stop = stop
        self.started = now().replace(microsecond=0)
        self.terminal = terminal or controlling_terminal
        self.tracked = Tracked()
        self.phases: dict[str, float] = {}
        self.session: Session | None = None
        self.login_key = KeyPair.generate()
        self.host_key = KeyPair.generate()
        self.versions: Versions | None = None
        self.plan: Plan | None = None
        self.recipe_ctx: RecipeContext | None = None
        self.build_identity = ("", "")  # machine-id, cloud-init instance-id of the build server
        self.boot_test_enabled = config.boot_test if boot_test is None else boot_test
        self.arch: str = config.architecture or "x86"
        self.image_name = ""
        self.base_image: BoundImage | None = None
        self.root_used_bytes: int | None = None
        self.image_size_gb: float | None = None
        self.local_mirror: LocalMirror | None = None
        self.placements: placement.Placements | None = None
        self.candidate: placement.Candidate | None = None
        # Seconds from the create call until SSH answered, per server role: a snapshot that
        # boots much slower than its base image delays every node CAPH creates from it.
        self.ssh_ready_seconds: dict[str, float] = {}
        self._created_at: dict[str, float] = {}
        self._failed = False
        # Set before the first create call: until then nothing can exist, and a failure (a bad
        # token in preflight) needs no label search.
        self._attempted_create = False
        self._in_flight = False
        self.kept_server_hint: str | None = None
        self.log = log.bind(build_id=self.build_id)

    # ------------------------------------------------------------------ naming
    @property
    def resource_name(self) -> str:
        return f"capi-image-{self.build_id}"

    @property
    def selector(self) -> str:
        return f"created-by={CREATED_BY},build-id={self.build_id}"

    def base_labels(self) -> dict[str, str]:
        return {"created-by": CREATED_BY, "build-id": self.build_id}

    def snapshot_labels(self) -> dict[str, str]:
        assert self.versions is not None
        p = self.config.profile
        return {
            **self.config.labels,
            **self.base_labels(),
            # image-builder's hcloud snapshot labels (packer/hcloud/packer.json) ...
            "build_date": self.started.strftime(UPSTREAM_TIME),
            "build_timestamp": str(int(self.started.timestamp())),
            "creationTimestamp": self.started.strftime(UPSTREAM_TIME),
            "distribution": p.distribution,
            "distribution_release": p.release,
            "distribution_version": p.version.replace(".", ""),  # 2404, as ubuntu-2404.json
            "image_builder_version": IMAGE_BUILDER_VERSION,  # the release the recipe follows
            "kubernetes_version": self.versions.kubernetes_semver,
            # ... and this tool's own
            "capi-image-version": __version__,
            "os": p.name,
            "arch": self.arch,
        }

    # ------------------------------------------------------------------ phases
    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        if self.stop is not None:
            self.stop.check(self.guard)
        self.log.info("phase.start", phase=name)
        self.on_phase(name, "start")
        t0 = time.monotonic()
        ok = False
        try:
            yield
            ok = True
        finally:
            self.phases[name] = round(time.monotonic() - t0, 3)
            self.log.info("phase.end", phase=name, ok=ok, seconds=self.phases[name])
            self.on_phase(name, "done" if ok else "failed")

    def run(self) -> BuildResult:
        """Build, publish, clean up. Raises on failure (after cleanup); returns the result."""
        structlog.contextvars.bind_contextvars(build_id=self.build_id)
        failure: BaseException | None = None
        result = BuildResult(self.build_id, ok=False)
        self.log.info(
            "build.start",
            project=self.config.name,
            os=self.config.os,
            server_type=self.config.server_type,
            location=self.config.location,
            endpoint=self.endpoint,
        )
        try:
            with self.phase("preflight"):
                self.preflight()
            with self.phase("ssh-key"):
                self.create_ssh_key()
            with self.phase("server"):
                self.create_server()
            with self.phase("ssh"):
                self.wait_for_ssh()
            with self.phase("provision"):
                self.provision()
            with self.phase("shutdown"):
                self.shutdown()
            with self.phase("snapshot"):
                self.snapshot()
            if self.boot_test_enabled:
                with self.phase("boot-test"):
                    self.boot_test()
            with self.phase("publish"):
                self.publish()
            result.ok = True
        except BaseException as e:
            failure = e
            result.error = logmod.scrub(str(e))
            self.log.error("build.failed", error=result.error, kind=type(e).__name__)
        finally:
            cleanup_error: BaseException | None = None
            with self.guard.shield():
                try:
                    with self.phase("cleanup"):
                        self.cleanup(failed=failure is not None)
                except BaseException as e:  # never mask the build's own failure
                    cleanup_error = e
                    self.log.error("cleanup.incomplete", error=logmod.scrub(str(e)))
                result.image_id = self.tracked.image_id if self.tracked.published else None
                result.image_name = self.image_name if self.tracked.published else None
                result.labels = {**self.snapshot_labels(), CAPH_LABEL: self.image_name} if result.ok else {}
                result.manifest = self.write_manifest(result, cleanup_error)
            structlog.contextvars.unbind_contextvars("build_id")
        if cleanup_error is not None:
            # Leftovers outrank the build's own failure: the caller must hear "run gc".
            detail = f"{result.error}; then cleanup: {cleanup_error}" if failure is not None else str(cleanup_error)
            raise CleanupIncompleteError(detail) from cleanup_error
        if failure is not None:
            raise failure
        self.log.info("build.done", image_id=result.image_id, caph_image_name=result.image_name)
        return result

    # ------------------------------------------------------------------ preflight
    def preflight(self) -> None:
        """Everything that can be checked without spending money: token, catalog, labels,
        versions, and that the new image name will not make CAPH's lookup ambiguous."""
        cfg = self.config
        try:
            self.versions = load_versions(cfg.versions_path())
        except VersionsError as e:
            raise PreflightError(str(e)) from e

        types = []
        for name in [cfg.server_type, *cfg.fallback_server_types]:
            st = self._get("server type", functools.partial(self.cloud.client.server_types.get_by_name, name))
            if st is None:
                raise PreflightError(f"server type '{name}' does not exist")
            assert isinstance(st, BoundServerType)
            types.append(st)
        primary = types[0]
        if cfg.architecture and cfg.architecture != primary.architecture:
            raise PreflightError(
                f"server type {cfg.server_type} is {primary.architecture}, the project asks for {cfg.architecture}"
            )
        self.arch = "arm" if primary.architecture == "arm" else "x86"
        for name in [cfg.location, *cfg.fallback_locations]:
            loc = self._get("location", functools.partial(self.cloud.client.locations.get_by_name, name))
            if loc is None:
                raise PreflightError(f"location '{name}' does not exist")
        try:
            self.placements = placement.plan(
                types, [cfg.location, *cfg.fallback_locations], str(primary.architecture), now=dt.datetime.now(dt.UTC)
            )
        except placement.NoPlacementError as e:
            raise PreflightError(str(e)) from e
        for warning in self.placements.warnings:
            self.log.warning("preflight.deprecation", note=warning)
        self.candidate = self.placements.candidates[0]
        image = self._find_base_image(cfg.base_image)
        self.base_image = image

        self.image_name = cfg.image_name.format(
            kubernetes_semver=self.versions.kubernetes_semver,
            kubernetes_series=self.versions.kubernetes_series,
            os=cfg.profile.os_label,
            arch=self.arch,
            timestamp=self.started.strftime("%Y%m%d-%H%M%S"),
            date=self.started.strftime("%Y%m%d"),
            build_id=self.build_id,
            project=cfg.name,
            build_name=cfg.profile.name,
            build_timestamp=str(int(self.started.timestamp())),
        )
        labels = {**self.snapshot_labels(), CAPH_LABEL: self.image_name}
        for key, value in labels.items():
            # Hetzner's label rules, as the pinned SDK states them
            ok, problem = LabelValidator.validate_verbose({key: value})
            if len(value) > 63 or len(key.rpartition("/")[2]) > 63:
                ok, problem = False, f"label {key} is longer than 63 characters (name or value)"
            if not ok:
                raise PreflightError(
                    f"label {key}={value!r} is invalid: {problem} (keys: [prefix/]name, name and value at most "
                    "63 characters, starting and ending alphanumeric, with [-_.a-zA-Z0-9] between)"
                )
        if cfg.provision.uses_localcloud_mirror():
            try:
                self.local_mirror = lookup_local_mirror(self.endpoint, self.versions, self.arch)
            except MirrorUnavailableError as e:
                raise PreflightError(str(e)) from e
        try:
            self.recipe_ctx = recipe_context(
                cfg,
                self.versions,
                build_id=self.build_id,
                started=self.started,
                arch=self.arch,
                localcloud_mirror=self.local_mirror.guest_url if self.local_mirror else None,
            )
            self.plan = render(cfg, self.recipe_ctx)
        except ConfigError as e:
            raise PreflightError(str(e)) from e
        clash = self._caph_matches()
        if clash:
            raise PreflightError(
                f"{CAPH_LABEL} '{self.image_name}' already matches image(s) {clash} for {self.arch}: "
                "CAPH would see the name as ambiguous; choose another image_name"
            )
        self.log.info("preflight.ok", image_name=self.image_name, base_image=image.id, arch=self.arch)

    def _find_base_image(self, ref: str) -> BoundImage:
        """A system image by name, or any image by ID (e.g. a snapshot to build on), as the
        hcloud API's own ``image`` parameter accepts both."""
        if not ref.isdigit():
            image = self._get("image", lambda: self.cloud.client.images.get_by_name_and_architecture(ref, self.arch))
            if image is None:
                raise PreflightError(f"image '{ref}' does not exist for architecture {self.arch}")
            return image  # type: ignore[no-any-return]

        def by_id() -> BoundImage | None:
            try:
                return self.cloud.client.images.get_by_id(int(ref))
            except APIException as e:
                if e.code == "not_found":
                    return None
                raise

        found = self._get("image", by_id)
        if found is None:
            raise PreflightError(f"image {ref} does not exist")
        assert isinstance(found, BoundImage)
        if found.architecture != self.arch:
            raise PreflightError(
                f"image {ref} is for {found.architecture}, server type {self.config.server_type} is {self.arch}"
            )
        if found.status != "available":
            raise PreflightError(f"image {ref} is {found.status}, not available")
        return found

    def _get(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return self.cloud.call(f"look up {what}", fn)
        except CloudError as e:
            if e.code in ("unauthorized", "token_readonly", "401"):
                raise PreflightError(
                    f"the API rejected the token in ${self.config.token_env} ({e.code}); check it belongs to the project"
                ) from e
            raise

    def _caph_matches(self, exclude: int | None = None, *, by_name: bool = True) -> list[int]:
        """Images CAPH would find for our name: label caph-image-name==V, plus name V (only
        system images have names, so the name query is skipped once preflight has done it)."""

        def lookup() -> list[int]:
            found = caph_images(self.cloud.client, self.image_name, self.arch, by_name=by_name)
            return [i.id for i in found if i.id != exclude and i.id is not None]

        return self.cloud.call("check caph-image-name", lookup)

    # ------------------------------------------------------------------ resources
    def _selector(self, role: str) -> str:
        return f"{self.selector},role={role}"

    @contextlib.contextmanager
    def _creating(self) -> Iterator[None]:
        """Around a create call. An exception that leaves it (an interrupt, mostly) may leave the
        request in flight: the API can still carry it out after we stopped listening, so
        cleanup waits ``timeouts.settle`` before its label search (``_in_flight``)."""
        self._attempted_create = True
        self._in_flight = True
        try:
            yield
        except CloudError:
            # A definitive answer (or retries exhausted after answers): nothing is still on its way.
            self._in_flight = False
            raise
        self._in_flight = False

    def _upload_key(self, role: str, key: KeyPair, name: str) -> int:
        keys = self.cloud.client.ssh_keys

        def recover() -> BoundSSHKey | None:
            found = keys.get_all(label_selector=self._selector(role))
            return found[0] if found else None

        with self._creating():
            created = self.cloud.call(
                f"create SSH key{'' if role == 'build' else ' (' + role + ')'}",
                lambda: keys.create(
                    name=name, public_key=key.public_openssh, labels={**self.base_labels(), "role": role}
                ),
                recover=recover,
            )
        assert created.id is not None
        self.log.info("ssh_key.created", ssh_key_id=created.id, role=role)
        return created.id

    def _launch(
        self, role: str, name: str, image_id: int, key_id: int, host: KeyPair, track: Callable[[int], None]
    ) -> str:
        """Create a server, wait until it runs; return its IPv4. ``track`` learns the id at once."""
        servers = self.cloud.client.servers
        actions: list[int] = []
        what = "create server" if role == "build" else f"create server ({role})"

        def create() -> BoundServer:
            assert self.candidate is not None  # set by preflight
            r = servers.create(
                name=name,
                server_type=ServerType(name=self.candidate.server_type),
                image=Image(id=image_id),
                location=Location(name=self.candidate.location),
                ssh_keys=[SSHKey(id=key_id)],
                user_data=host_key_user_data(host),
                labels={**self.base_labels(), "role": role},
            )
            actions.extend(a.id for a in [r.action, *(r.next_actions or [])] if a is not None and a.id is not None)
            assert r.server is not None
            return r.server

        def recover() -> BoundServer | None:
            found = servers.get_all(label_selector=self._selector(role))
            return found[0] if found else None

        self._created_at[role] = time.monotonic()
        with self._creating():
            server = self._create_with_fallback(what, create, recover)
        assert server.id is not None
        server_id: int = server.id
        track(server_id)
        self.log.info("server.created", server_id=server_id, role=role, actions=actions)
        deadline = self.config.timeouts.api_action
        for action_id in actions:
            final = self.cloud.wait_action(what, action_id, deadline)
            if final["status"] != "success":
                raise CloudError(f"{what} ({final['command']})", f"action ended in error: {final['error']}")

        def running() -> BoundServer | None:
            s = self.cloud.call("get server", lambda: servers.get_by_id(server_id))
            if s.status == "running":
                return s
            if s.status == "off" and not s.locked:
                raise CloudError(what, "the server is off after creation (create or start failed)")
            return None

        s = self.cloud.poll("server running", running, deadline)
        assert s.public_net is not None and s.public_net.ipv4 is not None
        self.log.info("server.running", server_id=s.id, role=role, ip=s.public_net.ipv4.ip)
        return str(s.public_net.ipv4.ip)

    def _create_with_fallback(
        self, what: str, create: Callable[[], BoundServer], recover: Callable[[], BoundServer | None]
    ) -> BoundServer:
        """Create; when the location has no capacity for the type, the next candidate of the
        project's server types x locations (a refused create made nothing). Recorded in the
        manifest's ``placement``."""
        while True:
            try:
                return self.cloud.call(what, create, recover=recover)
            except CloudError as e:
                if e.code not in placement.CAPACITY_CODES:
                    raise
                refused = self.candidate
                assert self.placements is not None and refused is not None
                following = self.placements.refused(refused, str(e.code), str(e.api_message))
                if following is None:
                    tried = "; ".join(
                        f"{t['server_type']} in {t['location']}: {t['error']}" for t in self.placements.tried
                    )
                    raise CloudError(what, f"no capacity in any of the project's placements ({tried})") from e
                self.log.warning("server.no_capacity", refused=str(refused), next=str(following), error=e.code)
                self.candidate = following

    def _connect(self, ip: str, login: KeyPair, host: KeyPair, role: str, server_id: int | None) -> Session:
        """SSH with the pinned host key, bounded retries and backoff; then cloud-init --wait."""
        session = Session(ip, login, host)
        try:
            self.cloud.poll("SSH", lambda: True if session.try_connect() else None, self.config.timeouts.ssh, cap=10)
        except TimeoutError as e:
            raise TimeoutError(f"{e}{self._console_hint(server_id)}") from e
        if role in self._created_at:
            self.ssh_ready_seconds[role] = round(time.monotonic() - self._created_at[role], 1)
        self.log.info("ssh.connected", ip=ip, role=role, seconds_since_create=self.ssh_ready_seconds.get(role))
        # Exit 2 means "done, with recoverable errors" (cloud-init >= 23.4): usable, but say so.
        status = session.run(
            "cloud-init status --wait >/dev/null 2>&1 && echo done || echo rc=$?",
            step="cloud-init",
            timeout=self.config.timeouts.cloud_init,
        ).strip()
        if status not in ("", "done"):
            if status == "rc=2":
                self.log.warning("cloud_init.degraded", note="cloud-init finished with recoverable errors")
            else:
                session.close()
                raise ProvisionError("cloud-init", f"cloud-init failed ({status})")
        return session

    def _console_hint(self, server_id: int | None) -> str:
        """Where a localcloud server's serial console can still be read (Hetzner has no API
        for it: its web console is interactive)."""
        if self.config.endpoint != "localcloud" or server_id is None:
            return ""
        path = self.config.localcloud.state_dir / "consoles" / f"{server_id}.log"
        return (
            f" — serial console: {admin_base(self.endpoint)}/__localcloud/servers/{server_id}/console "
            f"(kept after the server is deleted; an embedded localcloud keeps it in {path})"
        )

    def create_ssh_key(self) -> None:
        self.tracked.ssh_key_id = self._upload_key("build", self.login_key, self.resource_name)

    def create_server(self) -> None:
        assert self.base_image is not None and self.base_image.id is not None and self.tracked.ssh_key_id is not None

        def track(sid: int) -> None:
            self.tracked.server_id = sid

        self.tracked.server_ip = self._launch(
            "build", self.resource_name, self.base_image.id, self.tracked.ssh_key_id, self.host_key, track
        )

    def wait_for_ssh(self) -> None:
        assert self.tracked.server_ip is not None
        self.session = self._connect(
            self.tracked.server_ip, self.login_key, self.host_key, "build", self.tracked.server_id
        )

    def provision(self) -> None:
        assert self.session is not None and self.plan is not None
        # Remembered so the boot test can tell a new machine from a copy of this one.
        _, ident = self.session.probe(
            "cat /etc/machine-id 2>/dev/null; echo; cat /var/lib/cloud/data/instance-id 2>/dev/null; echo",
            step="identity",
        )
        lines = [*ident.splitlines(), "", ""]
        self.build_identity = (lines[0].strip(), lines[1].strip())
        self.session.run_plan(self.plan, timeout=self.config.timeouts.step)
        used = self.session.run("df -B1 --output=used / | tail -n 1", step="measure").strip()
        self.root_used_bytes = int(used) if used.isdigit() else None

    def shutdown(self) -> None:
        assert self.tracked.server_id is not None
        if self.session is not None:
            self.session.close()
        servers = self.cloud.client.servers
        sid: int = self.tracked.server_id
        server = Server(id=sid)
        action = self.cloud.call("shutdown server", lambda: servers.shutdown(server))
        if action.id is not None:
            final = self.cloud.wait_action("shutdown server", action.id, self.config.timeouts.api_action)
            if final["status"] != "success":
                self.log.warning("shutdown.action_failed", error=final["error"], note="falling back to poweroff")

        def off() -> bool | None:
            return True if self.cloud.call("get server", lambda: servers.get_by_id(sid)).status == "off" else None

        try:
            self.cloud.poll("server off", off, self.config.timeouts.shutdown, cap=5)
            return
        except TimeoutError:
            self.log.warning("shutdown.timeout", seconds=self.config.timeouts.shutdown, note="powering off")
        action = self.cloud.call("poweroff server", lambda: servers.power_off(server))
        if action.id is not None:
            final = self.cloud.wait_action("poweroff server", action.id, self.config.timeouts.api_action)
            if final["status"] != "success":
                raise CloudError("poweroff server", f"action ended in error: {final['error']}")
        self.cloud.poll("server off", off, self.config.timeouts.api_action, cap=5)

    def snapshot(self) -> None:
        assert self.tracked.server_id is not None
        servers, images = self.cloud.client.servers, self.cloud.client.images
        server = Server(id=self.tracked.server_id)
        action_ids: list[int] = []

        def create() -> BoundImage:
            r = servers.create_image(
                server, description=self.image_name, type="snapshot", labels=self.snapshot_labels()
            )
            if r.action is not None and r.action.id is not None:
                action_ids.append(r.action.id)
            return r.image

        def ours() -> list[BoundImage]:
            return images.get_all(label_selector=self.selector, type=["snapshot"])

        def recover() -> BoundImage | None:
            found = ours()
            return found[0] if found else None

        with self._creating():
            image = self.cloud.call("create image", create, recover=recover)
        assert image.id is not None
        image_id: int = image.id
        self.tracked.image_id = image_id  # before waiting: a failure must be able to delete it
        self.log.info("snapshot.creating", image_id=image.id)
        if action_ids:
            final = self.cloud.wait_action("create image", action_ids[0], self.config.timeouts.snapshot, cap=60)
            if final["status"] != "success":
                # The action can fail while the snapshot still turns out fine: judge the image.
                self.log.warning("snapshot.action_failed", error=final["error"], note="checking the image itself")

        def available() -> BoundImage | None:
            try:
                img = self.cloud.call("get image", lambda: images.get_by_id(image_id))
            except CloudError as e:
                if e.code == "not_found":
                    raise CloudError("create image", "the snapshot disappeared (the create_image action failed)") from e
                raise
            return img if img.status == "available" else None

        img = self.cloud.poll("snapshot available", available, self.config.timeouts.snapshot, cap=30)
        self.image_size_gb = img.image_size
        self.log.info("snapshot.available", image_id=img.id, image_size_gb=img.image_size)

    def boot_test(self) -> None:
        """Boot a server from the snapshot with a fresh key and host key, check it is a new
        machine in the state a node needs, delete it. A failure fails the build: the snapshot
        is never published."""
        assert self.tracked.image_id is not None and self.recipe_ctx is not None
        login, host = KeyPair.generate(), KeyPair.generate()
        self.tracked.boot_key_id = self._upload_key("boot-test", login, f"{self.resource_name}-boot")

        def track(sid: int) -> None:
            self.tracked.boot_server_id = sid

        ip = self._launch(
            "boot-test", f"{self.resource_name}-boot", self.tracked.image_id, self.tracked.boot_key_id, host, track
        )
        session = self._connect(ip, login, host, "boot-test", self.tracked.boot_server_id)
        try:
            checks = boot_checks(
                self.recipe_ctx,
                self.config.recipe,
                build_machine_id=self.build_identity[0],
                build_instance_id=self.build_identity[1],
                host_key_blob=host.public_openssh.split()[1],
            )
            try:
                session.run_step(
                    Step("boot-test", "a server booted from the snapshot is a new, healthy node", tuple(checks)),
                    timeout=120,
                )
            except ProvisionError as e:
                raise ProvisionError("boot-test", f"{e}{self._console_hint(self.tracked.boot_server_id)}") from e
        finally:
            session.close()
        boot_server_id = self.tracked.boot_server_id
        assert boot_server_id is not None
        self._delete_server(boot_server_id)
        self.tracked.boot_server_id = None
        assert self.tracked.boot_key_id is not None
        self._delete_key(self.tracked.boot_key_id)
        self.tracked.boot_key_id = None

    def publish(self) -> None:
        """Only now does the snapshot get the label CAPH resolves: CAPH does not look at image
        status, so a labelled snapshot still `creating` could be picked up too early."""
        assert self.tracked.image_id is not None
        clash = self._caph_matches(exclude=self.tracked.image_id, by_name=False)
        if clash:
            raise CloudError("publish", f"{CAPH_LABEL} '{self.image_name}' appeared on image(s) {clash} meanwhile")
        images = self.cloud.client.images
        labels = {**self.snapshot_labels(), CAPH_LABEL: self.image_name}
        image = Image(id=self.tracked.image_id)
        self.cloud.call("publish image", lambda: images.update(image, labels=labels, description=self.image_name))
        self.tracked.published = True
        self.log.info("snapshot.published", image_id=self.tracked.image_id, caph_image_name=self.image_name)

    # ------------------------------------------------------------------ cleanup
    def cleanup(self, *, failed: bool) -> None:
        """Delete what this build created, found by id and, as a net, by label. Retries
        transient errors; a resource is done only when the API says it is gone."""
        if self.session is not None:
            self.session.close()
        self._failed = failed
        client = self.cloud.client
        problems: list[str] = []
        if self._in_flight:
            # Interrupted while a create was on its way: give the API time to finish it, so the
            # label search below sees what it made (a real API executes what it received).
            self.log.info("cleanup.settle", seconds=self.config.timeouts.settle, reason="a create was in flight")
            time.sleep(self.config.timeouts.settle)

        server_ids = self._ids(
            (self.tracked.server_id, self.tracked.boot_server_id),
            "find servers",
            lambda: client.servers.get_all(label_selector=self.selector),
            problems,
        )
        if failed and self.keep_on_failure and server_ids:
            self._keep_for_debugging(server_ids)
        else:
            for sid in server_ids:
                try:
                    self._delete_server(sid)
                except (CloudError, TimeoutError) as e:
                    problems.append(f"server {sid}: {e}")

        key_ids = self._ids(
            (self.tracked.ssh_key_id, self.tracked.boot_key_id),
            "find SSH keys",
            lambda: client.ssh_keys.get_all(label_selector=self.selector),
            problems,
        )
        for kid in key_ids:
            try:
                self._delete_key(kid)
            except CloudError as e:
                problems.append(f"SSH key {kid}: {e}")

        if not self.tracked.published:
            image_ids = self._ids(
                (self.tracked.image_id,),
                "find snapshots",
                lambda: client.images.get_all(label_selector=self.selector, type=["snapshot"]),
                problems,
            )
            for iid in image_ids:
                try:
                    self._delete_image(iid)
                except (CloudError, TimeoutError) as e:
                    problems.append(f"snapshot {iid}: {e}")
        if problems:
            raise CleanupIncompleteError(
                "could not delete or could not verify: "
                + "; ".join(problems)
                + f" — run `capi-image gc` (label build-id={self.build_id})"
            )

    def _ids(
        self, tracked: tuple[int | None, ...], name: str, lister: Callable[[], list[Any]], unverified: list[str]
    ) -> list[int]:
        """The tracked ids plus whatever carries this build's labels. The label search is a net
        for what a failed or retried call may have created; a clean run knows all its ids.
        A search that could not run proves nothing: it lands in ``unverified`` (so the build
        exits 3, "run gc"), never counts as "nothing there"."""
        ids = {t for t in tracked if t}
        if self._attempted_create and (self._failed or self.cloud.retries):
            try:
                ids |= {r.id for r in self.cloud.call(name, lister) if r.id is not None}
            except CloudError as e:
                unverified.append(f"{name} by label failed ({e}), so more may be left")
        return sorted(i for i in ids if i)

    def _delete(self, name: str, fn: Callable[[], Any]) -> Any:
        try:
            return self.cloud.call(name, fn)
        except CloudError as e:
            if e.code == "not_found":
                return None  # already gone (perhaps by an earlier attempt whose answer was lost)
            raise

    def _delete_server(self, sid: int) -> None:
        servers = self.cloud.client.servers
        deadline = self.config.timeouts.api_action
        # A server stays locked while a snapshot of it is taken (an interrupt mid-snapshot):
        # waiting out the snapshot is the only way to delete it.
        unlock_deadline = deadline + self.config.timeouts.snapshot

        def gone() -> bool | None:
            try:
                s = self.cloud.call("get server", lambda: servers.get_by_id(sid))
            except CloudError as e:
                if e.code == "not_found":
                    return True
                raise
            if s.status != "deleting" and not s.locked:
                # A failed delete action leaves the server: ask again.
                request()
            return None

        def request() -> list[Any] | None:
            """Ask for deletion; None while the server is locked by a running action (e.g. the
            build was interrupted while the server was still being created)."""
            try:
                return [self._delete("delete server", lambda: servers.delete(Server(id=sid)))]
            except CloudError as e:
                if e.code == "locked":
                    return None
                raise

        [action] = self.cloud.poll(f"server {sid} unlocked", request, unlock_deadline)
        self.log.info("server.delete_requested", server_id=sid, action=getattr(action, "id", None))
        if action is not None and action.id is not None:
            self.cloud.wait_action("delete server", action.id, deadline)
        self.cloud.poll(f"server {sid} deleted", gone, deadline, cap=5)
        self.log.info("server.deleted", server_id=sid)

    def _delete_image(self, iid: int) -> None:
        images = self.cloud.client.images

        def attempt() -> bool | None:
            try:
                self.cloud.call(f"delete snapshot {iid}", lambda: images.delete(Image(id=iid)))
                return True
            except CloudError as e:
                if e.code == "not_found":
                    return True
                if e.code == "locked":
                    return None  # still being created: wait until it can be deleted
                raise

        self.cloud.poll(f"snapshot {iid} deleted", attempt, self.config.timeouts.snapshot, cap=30)
        if not self._gone(f"snapshot {iid}", lambda: images.get_by_id(iid)):
            raise CloudError(f"delete snapshot {iid}", "the API answered, but the snapshot is still there")
        self.log.info("snapshot.deleted", image_id=iid, reason="the build did not publish it")

    def _delete_key(self, kid: int) -> None:
        """Delete an SSH key and confirm it is gone (a 404 answer alone proves nothing)."""
        keys = self.cloud.client.ssh_keys
        self._delete(f"delete SSH key {kid}", lambda: keys.delete(SSHKey(id=kid)))
        if not self._gone(f"SSH key {kid}", lambda: keys.get_by_id(kid)):
            raise CloudError(f"delete SSH key {kid}", "the API answered, but the key is still there")

    def _gone(self, what: str, getter: Callable[[], Any]) -> bool:
        """True once the API answers not_found for the resource; the confirmation a deletion
        needs before the build may say it is gone."""
        try:
            self.cloud.call(f"get {what}", getter)
        except CloudError as e:
            if e.code == "not_found":
                return True
            raise
        return False

    def _keep_for_debugging(self, server_ids: list[int]) -> None:
        out = self.manifest_path.parent / f"{self.build_id}-debug"
        out.mkdir(parents=True, exist_ok=True)
        passphrase = secrets.token_urlsafe(12)
        key_file = out / "id_ed25519"
        key_file.write_text(self.login_key.private_openssh(passphrase.encode()))
        key_file.chmod(0o600)
        ip = self.tracked.server_ip or "<server ip>"
        hint = (
            f"kept server(s) {server_ids} for debugging.\n"
            f"  ssh -i {key_file} root@{ip}   (key passphrase: {{passphrase}})\n"
            f"  delete later: capi-image gc --build-id {self.build_id} --older-than 0s"
        )
        # The passphrase goes to the controlling terminal only, never to stdout or a log a CI
        # system keeps; without a terminal the key stays locked (gc still deletes the server).
        tty = self.terminal()
        if tty is not None:
            with tty:
                print(hint.format(passphrase=passphrase), file=tty, flush=True)
            self.kept_server_hint = hint.format(passphrase="shown on the terminal only")
        else:
            self.kept_server_hint = hint.format(passphrase="not shown: no terminal")
        print(self.kept_server_hint, flush=True)
        self.log.warning("server.kept", server_ids=server_ids, key_file=str(key_file))

    # ------------------------------------------------------------------ manifest
    def write_manifest(self, result: BuildResult, cleanup_error: BaseException | None) -> dict[str, Any]:
        cfg = self.config
        manifest: dict[str, Any] = {
            "result": "success" if result.ok else "failure",
            "error": result.error,
            "cleanup": "complete" if cleanup_error is None else f"incomplete: {logmod.scrub(str(cleanup_error))}",
            "build_id": self.build_id,
            "project": cfg.name,
            "tool_version": __version__,
            "started": self.started.isoformat(),
            "snapshot_id": result.image_id,
            "description": self.image_name if result.ok else None,
            "caph_image_name": result.image_name,
            "labels": result.labels,
            "image_size_gb": self.image_size_gb,
            "root_used_bytes": self.root_used_bytes,
            "versions": self.versions.model_dump() if self.versions else None,
            "os": cfg.os,
            "architecture": self.arch,
            "server_type": self.candidate.server_type if self.candidate else cfg.server_type,
            "location": self.candidate.location if self.candidate else cfg.location,
            "placement": (
                {"tried": self.placements.tried, "warnings": self.placements.warnings} if self.placements else None
            ),
            "base_image": cfg.base_image,
            "phases": self.phases,
            "ssh_ready_seconds": self.ssh_ready_seconds,
            "local_mirror": (
                {"url": self.local_mirror.guest_url, "standins": list(self.local_mirror.standins)}
                if self.local_mirror
                else None
            ),
            "steps": [
                {"name": t.name, "seconds": t.seconds, "ok": t.ok}
                for t in (self.session.timings if self.session else [])
            ],
            "api_requests": self.cloud.counter.total,
            "api_requests_by_call": dict(sorted(self.cloud.counter.by_call.items())),
        }
        manifest = logmod.scrub(manifest)
        self.manifest_path.parent.mkdir(parents=True, exist_ok=True)
        self.manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
        self.log.info("manifest.written", path=str(self.manifest_path))
        return manifest


__all__ = ["PHASES", "Build", "BuildResult", "CleanupIncompleteError", "Interrupted", "PreflightError", "new_build_id"]
