"""Matrix builds: several images (Kubernetes versions x OS profiles x architectures) in one
process, a bounded number at a time, all drawing on one API request budget.

Every build is an ordinary ``Build`` with its own client, keys and cleanup, so one failing
cleans up after itself and leaves the others running. Signals reach only the main thread: it
sets a ``StopSignal`` that each build notices at its next phase or wait, then waits for all of
them to finish their cleanup.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

from provision.versions import Versions, VersionsError, load_versions

from .. import log as logmod
from ..budget import RequestBudget
from ..caph import CAPH_LABEL
from ..cloud import connect
from ..config import ConfigError, ProjectConfig
from ..endpoint import target
from ..errors import CleanupIncompleteError, FailedError, InputError
from ..interrupts import Interrupted, SignalGuard, StopSignal
from ..naming import image_name
from ..pipeline import Build, BuildResult, new_build_id
from ..tables import console as make_console

log = logmod.get("capi-image.matrix")


@dataclass(frozen=True)
class Variant:
    key: str  # os/arch/k8s, unique within the matrix
    config: ProjectConfig
    versions: Versions


# One instant for every variant's probe name (see variants()).
PROBE_TIME = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


@dataclass
class VariantResult:
    variant: Variant
    build_id: str = ""
    result: BuildResult | None = None
    error: BaseException | None = None
    seconds: float = 0.0
    manifest: Path | None = None

    @property
    def status(self) -> str:
        if self.result is not None:
            return "unchanged" if self.result.unchanged else "published"
        if isinstance(self.error, CleanupIncompleteError):
            return "cleanup incomplete"
        if isinstance(self.error, Interrupted):
            return "interrupted"
        return "failed" if self.error is not None else "not run"


@dataclass
class MatrixOutcome:
    results: list[VariantResult] = field(default_factory=list)
    interrupted: Interrupted | None = None


def expand(config: ProjectConfig) -> list[Variant]:
    """Every combination, each a complete project config; checked without any API call."""
    m = config.matrix
    if m is None:
        raise ConfigError(f"project '{config.name}' has no matrix: add a `matrix:` section or build without --matrix")
    default_arch = config.architecture or ("arm" if config.server_type.startswith("cax") else "x86")
    variants = []
    for var_file in m.versions or [config.versions]:
        for os_name in m.os or [config.os]:
            for arch in m.architecture or [default_arch]:
                cfg = config.model_copy(
                    update={
                        "versions": var_file,
                        "os": os_name,
                        "architecture": arch,
                        "server_type": m.server_types.get(arch, config.server_type),
                        "matrix": None,
                    }
                )
                try:
                    versions = load_versions(cfg.versions_path())
                except VersionsError as e:
                    raise ConfigError(str(e)) from e
                variants.append(Variant(f"{os_name}/{arch}/k8s-{versions.kubernetes_semver}", cfg, versions))
    keys = [v.key for v in variants]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise ConfigError(f"the matrix lists {dupes} more than once (the same var file twice?)")
    names: dict[str, str] = {}
    for v in variants:
        # Two variants whose image names could only differ by the timestamp would race.
        # CAPH looks names up per architecture: the same name for x86 and arm is no clash.
        # the real name with one fixed time and build id: what is left to tell variants apart
        probe = f"{v.config.architecture}:" + image_name(
            v.config.image_name, versions=v.versions, profile=v.config.profile, arch=v.config.architecture or "x86",
            started=PROBE_TIME, build_id="B", project=config.name, recipe=v.config.recipe,
        )  # fmt: skip
        if probe in names and "{build_id}" not in v.config.image_name:
            raise ConfigError(
                f"image_name '{v.config.image_name}' gives {names[probe]} and {v.key} the same name; "
                "add {os}, {arch} and {kubernetes_semver} to it"
            )
        names[probe] = v.key
    return variants


BuildFactory = Callable[[Variant, RequestBudget, StopSignal], Build]


def factory(endpoint: str, token: str, manifest_dir: Path, **build_kwargs: Any) -> BuildFactory:
    """Builds for ``run``: each with its own client on the shared budget, and waits that
    notice the stop signal (except during its cleanup)."""

    def make(v: Variant, budget: RequestBudget, stop: StopSignal) -> Build:
        guard = SignalGuard()
        cloud = connect(v.config, token, endpoint, budget=budget, sleep=stop.sleeper(guard))
        build_id = new_build_id()
        return Build(v.config, cloud, endpoint=endpoint, build_id=build_id, guard=guard, stop=stop,
                     manifest_path=manifest_dir / f"build-{build_id}.json", **build_kwargs)  # fmt: skip

    return make


def run(
    variants: list[Variant],
    factory: BuildFactory,
    *,
    parallel: int,
    budget: RequestBudget,
    guard: SignalGuard | None = None,
) -> MatrixOutcome:
    """Run the builds, at most ``parallel`` at once. Never raises for a build's failure: each
    ends up in the outcome. A signal stops them all (each cleans up) and is reported."""
    stop = StopSignal()
    outcome = MatrixOutcome([VariantResult(v) for v in variants])
    guard = guard or SignalGuard()

    def one(slot: VariantResult) -> None:
        t0 = time.monotonic()
        try:
            b = factory(slot.variant, budget, stop)
            slot.build_id, slot.manifest = b.build_id, b.manifest_path
            slot.result = b.run()
        except BaseException as e:  # recorded; the other builds go on
            slot.error = e
        finally:
            slot.seconds = round(time.monotonic() - t0, 1)

    log.info("matrix.start", builds=len(variants), parallel=parallel, variants=[v.key for v in variants])
    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="build") as pool:
        pending: set[Future[None]] = {pool.submit(one, slot) for slot in outcome.results}
        while pending:
            try:
                _, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            except Interrupted as e:
                outcome.interrupted = e
                stop.set(e.signum)
                log.warning("matrix.stopping", signal=e.signum, note="every build cleans up first")
                with guard.shield():
                    for slot_future in pending:
                        slot_future.cancel()  # not started yet: nothing to clean
                    wait(pending)
                pending = set()
    for slot in outcome.results:
        if slot.status == "not run" and outcome.interrupted is not None:
            slot.error = outcome.interrupted
    return outcome


def summary_doc(outcome: MatrixOutcome, budget: RequestBudget, started: dt.datetime) -> dict[str, Any]:
    return {
        "started": started.isoformat(),
        "api_requests": budget.requests,
        "api_budget_wait_seconds": round(budget.waited, 1),
        "builds": [
            {
                "variant": r.variant.key,
                "status": r.status,
                "build_id": r.build_id,
                "snapshot_id": r.result.image_id if r.result else None,
                "caph-image-name": r.result.image_name if r.result else None,
                "unchanged": bool(r.result and r.result.unchanged),
                "sbom": (r.result.manifest.get("sbom") or {}).get("path") if r.result else None,
                "error": logmod.scrub(str(r.error)) if r.error is not None else None,
                "seconds": r.seconds,
                "manifest": str(r.manifest) if r.manifest else None,
            }
            for r in outcome.results
        ],
    }


def build_all(
    config: ProjectConfig,
    manifest: Path | None,
    parallel: int | None,
    *,
    keep_on_failure: bool,
    boot_test: bool | None,
    skip_unchanged: bool = False,
) -> None:
    """``capi-image build --matrix``: every variant, a table on stderr, the summary as JSON on
    stdout and in ``manifest`` (default dist/matrix-<time>.json). Raises by the worst outcome:
    cleanup incomplete, then interrupted, then any failure."""
    variants = expand(config)
    assert config.matrix is not None
    workers = config.matrix.parallel if parallel is None else parallel
    if workers < 1:
        raise InputError("--parallel must be at least 1")
    started = dt.datetime.now(dt.UTC).replace(microsecond=0)
    summary_path = manifest or Path("dist") / f"matrix-{started.strftime('%Y%m%d-%H%M%S')}.json"
    ab = config.api_budget
    budget = RequestBudget(ab.limit, ab.per_second, ab.reserve)
    guard = SignalGuard()
    with guard.installed(), target(config) as tgt:  # the CLI's set-up: target() redacts, connect() per build
        make = factory(tgt.endpoint, tgt.token, summary_path.parent, keep_on_failure=keep_on_failure,
                       boot_test=boot_test, skip_unchanged=skip_unchanged)  # fmt: skip
        outcome = run(variants, make, parallel=workers, budget=budget, guard=guard)
    doc = summary_doc(outcome, budget, started)
    summary_path.parent.mkdir(parents=True, exist_ok=True)
    summary_path.write_text(json.dumps(doc, indent=2) + "\n")
    columns = ("variant", "status", "snapshot_id", CAPH_LABEL, "seconds", "error")
    t = Table(title=f"matrix {config.name}: {len(variants)} builds, {doc['api_requests']} API requests")
    for col in columns:
        t.add_column(col)
    for row in doc["builds"]:
        t.add_row(*(str(row[c] if row[c] is not None else "") for c in columns))
    if logmod.current_format() == "console":  # JSON logs: the summary file holds the table
        make_console(stderr=True).print(t)
    print(json.dumps({**doc, "summary": str(summary_path)}))
    statuses = {r.status for r in outcome.results}
    if "cleanup incomplete" in statuses:  # outranks everything: the caller must run gc
        raise CleanupIncompleteError(f"a build could not delete everything it created: run {config.gc_command()}")
    if outcome.interrupted is not None:
        raise outcome.interrupted
    if not statuses <= {"published", "unchanged"}:
        raise FailedError("some builds failed: see the table; the others are published")
