"""The ``capi-image`` command line.

Exit codes: 0 success; 1 the build failed (cleaned up); 2 bad input, found before anything was
created; 3 cleanup incomplete (something may be left: run ``capi-image gc``);
130 interrupted by SIGINT, 143 by SIGTERM (cleaned up).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from . import log as logmod
from .budget import RequestBudget
from .build import CREATED_BY, Build, CleanupIncompleteError
from .caph import CAPH_LABEL
from .cloud import Cloud, CloudError, make_client
from .config import ConfigError, ProjectConfig, load_project
from .endpoint import MissingTokenError, target
from .gc import collect, parse_duration
from .interrupts import Interrupted, SignalGuard, install_exit_on_signal
from .report import PhaseDisplay, summary

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_CLEANUP = 0, 1, 2, 3

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__, pretty_exceptions_enable=False)

ProjectOpt = Annotated[str, typer.Option("--project", "-p", help="config/projects/NAME.yaml")]


def _log_format(value: str) -> str:
    if value not in ("auto", "console", "json"):
        raise typer.BadParameter(f"'{value}' is not one of auto, console, json")
    return value


LogFormatOpt = Annotated[
    str, typer.Option(help="auto (console on a TTY, else json), console or json", callback=_log_format)
]


def _fail(code: int, message: str) -> typer.Exit:
    # The message is text, never markup: "[localcloud]" or a label value in brackets must print as is.
    Console(stderr=True, soft_wrap=True).print(
        Text.assemble(("error:", "red"), " ", logmod.scrub(message)), highlight=False
    )
    return typer.Exit(code)


def _project(name: str) -> ProjectConfig:
    try:
        return load_project(name)
    except ConfigError as e:
        raise _fail(EXIT_INPUT, str(e)) from e


@app.command()
def build(
    project: ProjectOpt,
    manifest: Annotated[
        Path | None, typer.Option(help="where to write the build manifest JSON (with --matrix: the summary)")
    ] = None,
    keep_on_failure: Annotated[bool, typer.Option(help="keep the server of a failed build for debugging")] = False,
    boot_test: Annotated[
        bool, typer.Option(help="boot the snapshot once before publishing (default: the project's boot_test)")
    ] = True,
    os_profile: Annotated[str | None, typer.Option("--os", help="OS profile instead of the project's os")] = None,
    recipe: Annotated[
        str | None,
        typer.Option(
            help="recipe instead of the project's: full, or minimal (provenance + sysprep: the lifecycle only)"
        ),
    ] = None,
    matrix: Annotated[bool, typer.Option(help="build every combination of the project's matrix")] = False,
    parallel: Annotated[int | None, typer.Option(help="matrix builds at a time (default: matrix.parallel)")] = None,
    log_format: LogFormatOpt = "auto",
    build_id: Annotated[
        str | None,
        typer.Option(help="use this build id, e.g. a CI run id, so gc --build-id can find it (default: random)"),
    ] = None,
) -> None:
    """Build a node image and publish it as a snapshot labelled caph-image-name."""
    logmod.configure(log_format)  # type: ignore[arg-type]
    config = _project(project)
    for option, field, value in (("--os", "os", os_profile), ("--recipe", "recipe", recipe)):
        if value is not None:
            try:
                config = ProjectConfig.model_validate({**config.model_dump(), field: value})
            except ValidationError as e:
                raise _fail(EXIT_INPUT, f"{option}: {e.errors()[0]['msg']}") from e
    if matrix:
        _build_matrix(config, manifest, parallel, keep_on_failure=keep_on_failure, boot_test=boot_test)
        return
    guard = SignalGuard()
    budget = RequestBudget(config.api_budget.limit, config.api_budget.per_second, config.api_budget.reserve)
    with guard.installed():
        try:
            with target(config) as tgt:
                logmod.redact(tgt.token)
                client, counter = make_client(tgt.token, tgt.endpoint, budget=budget)
                cloud = Cloud(client, counter, config.retry, poll_initial=config.polling.initial)
                b = Build(config, cloud, endpoint=tgt.endpoint, build_id=build_id, keep_on_failure=keep_on_failure,
                          manifest_path=manifest, guard=guard, boot_test=None if boot_test else False)  # fmt: skip
                with PhaseDisplay() as display:
                    b.on_phase = display
                    try:
                        result = b.run()
                    finally:
                        if b.manifest_path.exists():
                            summary(json.loads(b.manifest_path.read_text()))
        except MissingTokenError as e:
            raise _fail(EXIT_INPUT, str(e)) from e
        except ConfigError as e:
            raise _fail(EXIT_INPUT, str(e)) from e
        except Interrupted as e:
            raise _fail(128 + e.signum, f"{e}; everything this build created was deleted") from e
        except CleanupIncompleteError as e:
            raise _fail(EXIT_CLEANUP, str(e)) from e
        except (CloudError, RuntimeError, TimeoutError, OSError) as e:
            raise _fail(EXIT_FAILED, f"build failed: {e}") from e
        # Still guarded: a signal now must not kill the process before the caller learns
        # which image was published.
        with guard.shield():
            print(
                json.dumps(
                    {"snapshot_id": result.image_id, CAPH_LABEL: result.image_name, "manifest": str(b.manifest_path)}
                ),
                flush=True,
            )


def _build_matrix(
    config: ProjectConfig, manifest: Path | None, parallel: int | None, *, keep_on_failure: bool, boot_test: bool
) -> None:
    import datetime as dt

    from . import matrix as mx

    try:
        variants = mx.expand(config)
    except ConfigError as e:
        raise _fail(EXIT_INPUT, str(e)) from e
    assert config.matrix is not None
    workers = config.matrix.parallel if parallel is None else parallel
    if workers < 1:
        raise _fail(EXIT_INPUT, "--parallel must be at least 1")
    started = dt.datetime.now(dt.UTC).replace(microsecond=0)
    summary_path = manifest or Path("dist") / f"matrix-{started.strftime('%Y%m%d-%H%M%S')}.json"
    ab = config.api_budget
    budget = RequestBudget(ab.limit, ab.per_second, ab.reserve)
    guard = SignalGuard()
    with guard.installed():
        try:
            with target(config) as tgt:
                logmod.redact(tgt.token)

                make = mx.factory(tgt.endpoint, tgt.token, summary_path.parent, keep_on_failure=keep_on_failure,
                                  boot_test=None if boot_test else False)  # fmt: skip
                outcome = mx.run(variants, make, parallel=workers, budget=budget, guard=guard)
        except MissingTokenError as e:
            raise _fail(EXIT_INPUT, str(e)) from e
    doc = mx.summary_doc(outcome, budget, started)
    summary_path.parent.mkdir(parents=True, exist_ok=True)
    summary_path.write_text(json.dumps(doc, indent=2) + "\n")
    t = Table(title=f"matrix {config.name}: {len(variants)} builds, {doc['api_requests']} API requests")
    for col in ("variant", "status", "snapshot_id", CAPH_LABEL, "seconds", "error"):
        t.add_column(col)
    for row in doc["builds"]:
        t.add_row(
            *(
                str(row[c] if row[c] is not None else "")
                for c in ("variant", "status", "snapshot_id", CAPH_LABEL, "seconds", "error")
            )
        )
    Console(stderr=True).print(t)
    print(json.dumps({**doc, "summary": str(summary_path)}))
    statuses = {r.status for r in outcome.results}
    if "cleanup incomplete" in statuses:  # outranks everything: the caller must run gc
        raise _fail(EXIT_CLEANUP, "a build could not delete everything it created: run capi-image gc")
    if outcome.interrupted is not None:
        raise _fail(128 + outcome.interrupted.signum, f"{outcome.interrupted}; every build cleaned up")
    if statuses != {"published"}:
        raise _fail(EXIT_FAILED, "some builds failed: see the table; the others are published")


@app.command()
def gc(
    project: ProjectOpt,
    older_than: Annotated[str, typer.Option(help="only what is older than this (90s, 30m, 2h, 1d)")] = "2h",
    build_id: Annotated[str | None, typer.Option(help="only this build's resources")] = None,
    dry_run: Annotated[bool, typer.Option(help="say what would be deleted")] = False,
    log_format: LogFormatOpt = "auto",
) -> None:
    """Delete servers, SSH keys and unpublished snapshots left by builds (label created-by=capi-image)."""
    logmod.configure(log_format)  # type: ignore[arg-type]
    config = _project(project)
    try:
        age = parse_duration(older_than)
    except ValueError as e:
        raise _fail(EXIT_INPUT, str(e)) from e
    try:
        with target(config) as tgt:
            logmod.redact(tgt.token)
            client, counter = make_client(tgt.token, tgt.endpoint)
            report = collect(Cloud(client, counter, config.retry), age, build_id=build_id, dry_run=dry_run)
    except MissingTokenError as e:
        raise _fail(EXIT_INPUT, str(e)) from e
    except CloudError as e:
        raise _fail(EXIT_FAILED, str(e)) from e
    print(json.dumps({"deleted": report.deleted, "spared": report.spared, "failed": report.failed}, indent=1))
    if report.failed:
        raise typer.Exit(EXIT_CLEANUP)


@app.command()
def images(
    project: ProjectOpt,
    output: Annotated[str, typer.Option("--output", "-o", help="table or json")] = "table",
) -> None:
    """List the snapshots this tool built, newest first, with their labels."""
    logmod.configure("json" if output == "json" else "auto")
    config = _project(project)
    try:
        with target(config) as tgt:
            logmod.redact(tgt.token)
            client, counter = make_client(tgt.token, tgt.endpoint)
            cloud = Cloud(client, counter, config.retry)
            found = cloud.call(
                "list snapshots",
                lambda: client.images.get_all(
                    label_selector=f"created-by={CREATED_BY}", type=["snapshot"], sort=["created:desc"]
                ),
            )
    except MissingTokenError as e:
        raise _fail(EXIT_INPUT, str(e)) from e
    except CloudError as e:
        raise _fail(EXIT_FAILED, str(e)) from e
    rows = [
        {
            "id": i.id,
            "created": i.created.isoformat() if i.created else None,
            "status": i.status,
            "architecture": i.architecture,
            CAPH_LABEL: (i.labels or {}).get(CAPH_LABEL),
            "image_size_gb": i.image_size,
            "labels": i.labels,
        }
        for i in found
    ]
    if output == "json":
        print(json.dumps(rows, indent=1))
        return
    t = Table()
    for col in ("id", "created", "status", "architecture", CAPH_LABEL, "image_size_gb"):
        t.add_column(col)
    for r in rows:
        t.add_row(*(str(r[c]) for c in ("id", "created", "status", "architecture", CAPH_LABEL, "image_size_gb")))
    Console().print(t)


@app.command()
def plan(
    project: ProjectOpt,
    output: Annotated[str, typer.Option("--output", "-o", help="text or json")] = "text",
) -> None:
    """Print the resolved recipe — steps, versions, URLs, checksums, rendered files — without
    any API call or network access."""
    import datetime as dt

    from provision.versions import VersionsError

    from .planning import plan_document

    config = _project(project)
    try:
        doc = plan_document(config, build_id="<build-id>", started=dt.datetime.now(dt.UTC))
    except VersionsError as e:
        raise _fail(EXIT_INPUT, str(e)) from e
    except ConfigError as e:
        raise _fail(EXIT_INPUT, str(e)) from e
    arch = doc["architecture"]
    doc = logmod.scrub(doc)
    if output == "json":
        print(json.dumps(doc, indent=1))
        return
    print(f"# project {doc['project']}: recipe {doc['recipe']}, {doc['os']} ({arch}) from {doc['base_image']}")
    for k, v in doc["versions"].items():
        print(f"#   {k} = {v}")
    for step in doc["steps"]:
        print(f"\n## step {step['name']}: {step['description']}")
        for op in step["operations"]:
            if "run" in op:
                env = f"  [env: {', '.join(op['env'])}]" if op["env"] else ""
                print(f"$ {op['run']}{env}")
            elif "file" in op:
                print(f"--- file {op['file']} (mode {op['mode']})")
                print(op["content"].rstrip("\n"))
                print("---")
            else:
                print(f"? {op['check']}: {op['command']}  => {op['expect']} {op['value']}".rstrip())


@app.command()
def prune(
    project: ProjectOpt,
    keep: Annotated[int | None, typer.Option(help="newest snapshots kept per family (default: retention.keep)")] = None,
    in_use: Annotated[
        list[Path] | None,
        typer.Option(
            help="files or dirs (repeatable) whose every string is searched for image names and ids: "
            "what they name is spared, with the file and path said"
        ),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="delete; without it, only say what would be deleted")] = False,
    output: Annotated[str, typer.Option("--output", "-o", help="table or json")] = "table",
    log_format: LogFormatOpt = "auto",
) -> None:
    """Keep the newest N published snapshots per family (OS, arch, Kubernetes minor); spare those
    servers run from or manifests name. Dry run unless --yes."""
    from . import prune as pr
    from .inuse import InUseInputError, scan

    logmod.configure(log_format)  # type: ignore[arg-type]
    config = _project(project)
    keep = config.retention.keep if keep is None else keep
    if keep < 1:
        raise _fail(EXIT_INPUT, "--keep must be at least 1: prune never deletes a family's newest image")
    try:
        names = scan(in_use or [])
        with target(config) as tgt:
            logmod.redact(tgt.token)
            client, counter = make_client(tgt.token, tgt.endpoint)
            cloud = Cloud(client, counter, config.retry)
            report = pr.execute(cloud, pr.plan(cloud, config, keep, names), yes=yes)
    except InUseInputError as e:
        raise _fail(EXIT_INPUT, str(e)) from e
    except MissingTokenError as e:
        raise _fail(EXIT_INPUT, str(e)) from e
    except CloudError as e:
        raise _fail(EXIT_FAILED, str(e)) from e
    rows = [d.as_dict() for d in report.decisions]
    if output == "json":
        print(json.dumps(rows, indent=1))
    else:
        t = Table(title=f"prune {project}: keep {keep} per family" + ("" if yes else " (dry run)"))
        for col in ("id", CAPH_LABEL, "family", "action", "reason", "outcome"):
            t.add_column(col)
        for r in rows:
            t.add_row(*(str(r[c]) for c in ("id", CAPH_LABEL, "family", "action", "reason", "outcome")))
        Console().print(t)
    if report.failed:
        raise typer.Exit(EXIT_CLEANUP)


@app.command()
def manifests(
    from_manifest: Annotated[
        Path | None, typer.Option("--from", help="build manifest JSON written by capi-image build")
    ] = None,
    image: Annotated[str | None, typer.Option(help="caph-image-name value or snapshot id (instead of --from)")] = None,
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="project whose API is checked (default: the build's)")
    ] = None,
    cluster: Annotated[
        list[Path] | None, typer.Option(help="existing cluster manifests to update: file or directory, repeatable")
    ] = None,
    kustomize: Annotated[
        Path | None, typer.Option(help="write a kustomize Component to this directory; leave the files alone")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="print the diff of the cluster manifests, write nothing")] = False,
    server_type: Annotated[str | None, typer.Option(help="server type of the new templates (default: kept)")] = None,
    role: Annotated[str, typer.Option(help="all, control-plane or workers")] = "all",
    cluster_name: Annotated[
        str, typer.Option(help="name prefix of new templates when no --cluster is given")
    ] = "cluster",
) -> None:
    """Lift a published snapshot into Cluster API manifests: new HCloudMachineTemplates, and the
    KubeadmControlPlane / MachineDeployments repointed at them (a rolling update)."""
    import difflib

    from . import manifests as mf

    logmod.configure("auto")
    if (from_manifest is None) == (image is None):
        raise _fail(EXIT_INPUT, "give exactly one of --from BUILD_MANIFEST or --image NAME_OR_ID")
    roles: tuple[mf.Role, ...] = mf.ROLES if role == "all" else (role,) if role in mf.ROLES else ()
    if not roles:
        raise _fail(EXIT_INPUT, f"--role must be all, control-plane or workers, not '{role}'")
    if kustomize and dry_run:
        raise _fail(EXIT_INPUT, "--kustomize and --dry-run exclude each other")
    try:
        ref = mf.image_from_build_manifest(from_manifest) if from_manifest else mf.ImageRef(name=str(image))
        project = project or ref.project
        if not project:
            raise mf.ManifestError("no project: pass --project (a build manifest names its own)")
        config = _project(project)
        sources = mf.load_sources(cluster) if cluster else []
        with target(config) as tgt:
            logmod.redact(tgt.token)
            client, counter = make_client(tgt.token, tgt.endpoint)
            cloud = Cloud(client, counter, config.retry)
            if image is not None and image.isdigit():
                found = cloud.call(f"look up image {image}", lambda: client.images.get_by_id(int(image)))
                label = (found.labels or {}).get(CAPH_LABEL)
                if not label:
                    raise mf.ManifestError(f"image {image} is not published: it has no {CAPH_LABEL} label")
                ref = mf.ImageRef(name=label, snapshot_id=found.id)
            if sources:
                rollout = mf.plan_rollout(ref, sources, roles, server_type)
            else:
                rollout = mf.fresh_templates(ref, roles, cluster_name, server_type)
            resolved = mf.check_resolution(cloud, rollout)
    except MissingTokenError as e:
        raise _fail(EXIT_INPUT, str(e)) from e
    except mf.ManifestError as e:
        raise _fail(EXIT_INPUT, str(e)) from e
    except CloudError as e:
        raise _fail(EXIT_FAILED, str(e)) from e
    snapshot_id = next(iter(resolved.values()), ref.snapshot_id)
    err = Console(stderr=True, soft_wrap=True)
    for note in rollout.notes:
        err.print(f"note: {note}", highlight=False, markup=False)
    if not sources:
        print("".join(t.text for t in rollout.templates), end="")
        err.print(f"snapshot id: {snapshot_id}\nHCLOUD_IMAGE={snapshot_id}  (cluster-autoscaler)", highlight=False)
        return
    written: list[str] = []
    try:
        if kustomize:
            kustomize.mkdir(parents=True, exist_ok=True)
            for name, text in mf.kustomize_component(rollout).items():
                (kustomize / name).write_text(text)
                written.append(str(kustomize / name))
        else:
            edited = mf.edited_files(rollout)
            for src in sources:
                if src.path in edited:
                    if dry_run:
                        diff = difflib.unified_diff(
                            src.text.splitlines(True), edited[src.path].splitlines(True), str(src.path), str(src.path)
                        )
                        print("".join(diff), end="")
                    else:
                        src.path.write_text(edited[src.path])
                        written.append(str(src.path))
    except mf.ManifestError as e:
        raise _fail(EXIT_INPUT, str(e)) from e
    if dry_run:
        return
    print(
        json.dumps(
            {
                CAPH_LABEL: rollout.image.name,
                "snapshot_id": snapshot_id,
                "HCLOUD_IMAGE": str(snapshot_id),
                "templates": [{"name": t.name, "role": t.role, "type": t.server_type} for t in rollout.templates],
                "updated": [f"{c.site.kind} {c.site.name}: {c.site.template} -> {c.new}" for c in rollout.changes]
                + [f"{v.site.what}: {v.site.old} -> {v.new}" for v in rollout.variables],
                "written": written,
                "notes": rollout.notes,
            },
            indent=1,
        )
    )


@app.command("summary")
def summary_cmd(
    files: Annotated[list[Path], typer.Argument(help="build manifests or matrix summaries (JSON)")],
    title: Annotated[str, typer.Option(help="heading of the report")] = "Node images",
) -> None:
    """Markdown report of builds (for $GITHUB_STEP_SUMMARY): images, status, the manifests snippet."""
    from .summary import SummaryError, markdown

    try:
        print(markdown(files, title=title), end="")
    except SummaryError as e:
        raise _fail(EXIT_INPUT, str(e)) from e


def main() -> None:
    install_exit_on_signal()  # `python -m builder.cli` as well as the installed entry point
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover - a handler other than ours was active
        sys.exit(130)


if __name__ == "__main__":
    main()
