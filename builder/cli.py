"""The ``capi-image`` command line: commands, their options, and errors turned into one line and
an exit code (see ``builder.clihelp`` for what the help says, ``builder.errors`` for the codes)."""

from __future__ import annotations

if __name__ == "__main__":  # `python -m builder.cli`: the console script's early signal handling
    from .entry import install_early

    install_early()

# After the handler above: a Ctrl-C during the imports below exits 130, without a traceback.
import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.core
from pydantic import ValidationError
from rich.text import Text

from . import clihelp, cliinput
from . import log as logmod
from .budget import RequestBudget
from .caph import CAPH_LABEL
from .cliopts import (
    LogFormat,
    LogFormatOpt,
    OutputOpt,
    ProjectOpt,
    Recipe,
    RoleChoice,
    TableOrJson,
    TextOrJson,
    VarFileOpt,
)
from .cloud import Cloud, connect
from .config import CONFIG_ENV, ProjectConfig, load_project, set_config_dir, validation_lines
from .endpoint import Target, target
from .errors import EXIT_FAILED, CapiImageError, CleanupIncompleteError, InputError, exit_code_of
from .interrupts import Interrupted, SignalGuard, install_exit_on_signal
from .pipeline import Build
from .pipeline.record import late_create_note, result_line
from .report import PhaseDisplay, summary
from .tables import console as make_console
from .tables import show


def _print_error(message: str, notes: list[str] | None = None, label: str = "error:") -> None:
    # The message is text, never markup: "[localcloud]" or a label value in brackets must print as is.
    console = make_console(stderr=True, soft_wrap=True)
    console.print(Text.assemble((label, "red"), " ", logmod.scrub(message)), highlight=False)
    for note in notes or []:  # e.g. a create that may still appear (pipeline/record.late_create_note)
        console.print(Text.assemble(("note:", "yellow"), " ", logmod.scrub(note)), highlight=False)


# The one place errors become exit codes: each class carries its own (builder/errors.py).
class ErrorMappingGroup(typer.core.TyperGroup):
    """Every command's errors become a message on stderr and the exit code their class carries.
    Anything else is a bug and keeps its traceback."""

    def invoke(self, ctx: Any) -> Any:  # typer's vendored click.Context
        try:
            return super().invoke(ctx)
        except (CapiImageError, Interrupted) as e:
            interrupted = isinstance(e, Interrupted)
            notes = list(getattr(e, "__notes__", []))
            _print_error(f"{e}; everything it created was cleaned up" if interrupted else str(e), notes)
            raise typer.Exit(exit_code_of(e)) from e
        except OSError as e:  # last resort: the network or a file, somewhere not wrapped (a bug to report)
            _print_error(f"failed: {type(e).__name__}: {e}")
            raise typer.Exit(EXIT_FAILED) from e


app = typer.Typer(
    cls=ErrorMappingGroup,
    no_args_is_help=True,
    help=clihelp.APP,
    epilog=clihelp.APP_EPILOG,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        from . import __version__

        print(f"capi-image {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    config_dir: Annotated[
        Path | None,
        typer.Option(
            "--config-dir",
            envvar=CONFIG_ENV,
            help="where named projects live (projects/NAME.yaml); default: ./config, or the checkout's config/",
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version and exit")
    ] = False,
) -> None:
    set_config_dir(config_dir)


@app.command(**clihelp.of("init"))
def init(
    name: Annotated[str, typer.Argument(help="the project's name (labels, gc and prune scope)")],
    directory: Annotated[Path, typer.Option("--dir", help="where to write NAME.yaml and vars/")] = Path("."),
) -> None:
    # help: builder/clihelp.py
    from .ops.init import init_project

    for path in init_project(name, directory):
        print(f"wrote {path}")
    print(
        f"next: export HCLOUD_TOKEN=<the Hetzner project's API token>; capi-image plan -p {directory / name}.yaml; "
        f"capi-image build -p {directory / name}.yaml"
    )


def _override(config: ProjectConfig, option: str, field: str, value: object) -> ProjectConfig:
    """The project with one setting replaced from the command line, validated as the file is."""
    if value is None:
        return config
    if field == "versions":  # a path from the working directory, said as the user wrote it
        if not Path(str(value)).is_file():
            raise InputError(f"{option} {value} does not exist")
        value = Path(str(value)).resolve()
    try:
        overridden = ProjectConfig.model_validate({**config.model_dump(), field: str(value)})
    except ValidationError as e:
        raise InputError(f"{option}: {validation_lines(e)[0].split(': ', 1)[1]}") from e
    overridden._root, overridden._ref = config._root, config._ref
    return overridden


@contextlib.contextmanager
def _api(config: ProjectConfig, budget: RequestBudget | None = None) -> Iterator[tuple[Cloud, Target]]:
    """The one place a command reaches the API: the project's endpoint (an embedded
    localcloud lives as long as the block), the token redacted from every output, the client."""
    with target(config) as tgt:  # target() redacts the token
        yield connect(config, tgt.token, tgt.endpoint, budget=budget), tgt


@app.command(**clihelp.of("build"))
def build(
    project: ProjectOpt,
    manifest: Annotated[
        Path | None, typer.Option(help="where to write the build manifest JSON (with --matrix: the summary)")
    ] = None,
    var_file: VarFileOpt = None,
    keep_on_failure: Annotated[
        bool,
        typer.Option(
            "--keep-on-failure",
            help="keep the server of a failed build for debugging (its key in ~/.local/state/capi-image/debug/)",
        ),
    ] = False,
    boot_test: Annotated[
        bool | None,
        typer.Option(
            "--boot-test/--no-boot-test",
            help="boot the snapshot once before publishing (default: the project's boot_test)",
        ),
    ] = None,
    os_profile: Annotated[str | None, typer.Option("--os", help="OS profile instead of the project's os")] = None,
    recipe: Annotated[
        Recipe | None,
        typer.Option(
            help="recipe instead of the project's: full, or minimal (provenance + sysprep: the lifecycle only)"
        ),
    ] = None,
    matrix: Annotated[bool, typer.Option("--matrix", help="build every combination of the project's matrix")] = False,
    parallel: Annotated[int | None, typer.Option(help="matrix builds at a time (default: matrix.parallel)")] = None,
    log_format: LogFormatOpt = LogFormat.auto,
    build_id: Annotated[
        str | None,
        typer.Option(help="use this build id, e.g. a CI run id, so gc --build-id can find it (default: random)"),
    ] = None,
) -> None:
    # help: builder/clihelp.py
    logmod.configure(log_format.value)
    build_id = cliinput.build_id(build_id)
    manifest = cliinput.output_path(manifest, "--manifest")
    if manifest is None:  # the default, dist/build-<id>.json: checked as early
        cliinput.writable_dir(Path("dist"), "the build manifest (default dist/; --manifest names another file)")
    config = load_project(project)
    config = _override(config, "--os", "os", os_profile)
    config = _override(config, "--recipe", "recipe", recipe)
    config = _override(config, "--var-file", "versions", var_file)
    if matrix:
        from .ops.matrix import build_all

        build_all(config, manifest, parallel, keep_on_failure=keep_on_failure, boot_test=boot_test)
        return
    guard = SignalGuard()
    budget = RequestBudget(config.api_budget.limit, config.api_budget.per_second, config.api_budget.reserve)
    with guard.installed():
        with _api(config, budget) as (cloud, tgt):
            b = Build(config, cloud, endpoint=tgt.endpoint, build_id=build_id, keep_on_failure=keep_on_failure,
                      manifest_path=manifest, guard=guard, boot_test=boot_test)  # fmt: skip
            with PhaseDisplay() as display:
                b.on_phase = display
                try:
                    result = b.run()
                except CleanupIncompleteError:
                    # Exit 3 after a publish: the image is live, so the caller still gets its line.
                    if b.result is not None and b.result.image_id is not None:
                        with guard.shield():
                            print(json.dumps(result_line(b.result, b.manifest_path)), flush=True)
                    raise
                finally:
                    # JSON logs are for machines: the manifest file holds what the table shows
                    if b.manifest_path.exists() and logmod.current_format() == "console":
                        summary(json.loads(b.manifest_path.read_text()))
        # Still guarded: a signal now must not kill the process before the caller learns
        # which image was published.
        with guard.shield():
            if result.unanswered_create:
                _print_error(late_create_note(config.gc_command(result.build_id)), label="note:")
            print(json.dumps(result_line(result, b.manifest_path)), flush=True)


@app.command(**clihelp.of("gc"))
def gc(
    project: ProjectOpt,
    older_than: Annotated[str, typer.Option(help="only what is older than this (90s, 30m, 2h, 1d, 1d12h)")] = "2h",
    build_id: Annotated[str | None, typer.Option(help="only this build's resources")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="only say what would be deleted")] = False,
    output: OutputOpt = TableOrJson.json,
    log_format: LogFormatOpt = LogFormat.auto,
) -> None:
    # help: builder/clihelp.py
    from .ops.gc import collect, parse_duration

    logmod.configure(log_format.value)
    config = load_project(project)
    age = parse_duration(older_than)
    with _api(config) as (cloud, _):
        report = collect(
            cloud,
            age,
            labels=config.labels,
            build_id=cliinput.build_id(build_id),
            dry_run=dry_run,
            timeouts=config.timeouts,
        )
    rows = [i.as_dict() for i in report.items]
    show(rows, ("kind", "id", "name", "action", "reason"), output.value, title=f"gc {config.ref}")
    if report.failed:
        raise CleanupIncompleteError(f"{len(report.failed)} deletion(s) failed (listed above): run gc again")


@app.command(**clihelp.of("images"))
def images(
    project: ProjectOpt,
    output: OutputOpt = TableOrJson.table,
) -> None:
    # help: builder/clihelp.py
    from .ops.images import COLUMNS, list_images

    logmod.configure("json" if output is not TableOrJson.table else "auto")
    config = load_project(project)
    with _api(config) as (cloud, _):
        rows = list_images(cloud, config.labels)
    show(rows, COLUMNS, output.value)


@app.command(**clihelp.of("plan"))
def plan(
    project: ProjectOpt,
    var_file: VarFileOpt = None,
    output: Annotated[TextOrJson, typer.Option("--output", "-o", help="text or json")] = TextOrJson.text,
) -> None:
    # help: builder/clihelp.py
    import datetime as dt

    from .planning import plan_document, plan_text

    config = _override(load_project(project), "--var-file", "versions", var_file)
    doc = logmod.scrub(plan_document(config, build_id="<build-id>", started=dt.datetime.now(dt.UTC)))
    print(
        json.dumps(doc, indent=1) if output is TextOrJson.json else plan_text(doc),
        end="\n" if output is TextOrJson.json else "",
    )


@app.command(**clihelp.of("prune"))
def prune(
    project: ProjectOpt,
    keep: Annotated[int | None, typer.Option(help="newest snapshots kept per family (default: retention.keep)")] = None,
    in_use: Annotated[
        list[Path] | None,
        typer.Option(
            metavar="PATH|-",
            help="files or dirs (repeatable), or - for standard input (kubectl get ... -o yaml), whose every "
            "string is searched for image names and ids: what they name is spared, with the file and path said",
        ),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="delete; without it, only say what would be deleted")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="only say what would be deleted (the default)")] = False,
    output: OutputOpt = TableOrJson.table,
    log_format: LogFormatOpt = LogFormat.auto,
) -> None:
    # help: builder/clihelp.py
    from .ops import prune as pr
    from .ops.inuse import scan

    logmod.configure(log_format.value)
    config = load_project(project)
    if yes and dry_run:
        raise InputError("--yes and --dry-run exclude each other")
    keep = config.retention.keep if keep is None else keep
    if keep < 1:
        raise InputError("--keep must be at least 1: prune never deletes a family's newest image")
    names = scan(in_use or [])
    with _api(config) as (cloud, _):
        report = pr.execute(cloud, pr.plan(cloud, config, keep, names), yes=yes, timeouts=config.timeouts)
    rows = [d.as_dict() for d in report.decisions]
    title = f"prune {config.ref}: keep {keep} per family" + ("" if yes else " (dry run)")
    show(rows, ("id", CAPH_LABEL, "family", "action", "reason", "outcome"), output.value, title=title)
    if report.failed:
        raise CleanupIncompleteError(f"{len(report.failed)} deletion(s) failed (listed above)")


@app.command(**clihelp.of("manifests"))
def manifests(
    from_manifest: Annotated[
        Path | None, typer.Option("--from", help="build manifest JSON written by capi-image build")
    ] = None,
    image: Annotated[str | None, typer.Option(help="caph-image-name value or snapshot id (instead of --from)")] = None,
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="project whose API is checked (default: the build's)")
    ] = None,
    cluster: Annotated[
        list[Path] | None,
        typer.Option(
            metavar="PATH", help="existing cluster manifests to update: file, folder or kustomize tree, repeatable"
        ),
    ] = None,
    kustomize: Annotated[
        Path | None, typer.Option(help="write a kustomize Component to this directory; leave the files alone")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="print the diff of the cluster manifests, write nothing")] = False,
    server_type: Annotated[str | None, typer.Option(help="server type of the new templates (default: kept)")] = None,
    role: Annotated[RoleChoice, typer.Option(help="all, control-plane or workers")] = RoleChoice.all,
    cluster_name: Annotated[
        str, typer.Option(help="name prefix of new templates when no --cluster is given")
    ] = "cluster",
    allow_partial_recipe: Annotated[
        bool,
        typer.Option(
            "--allow-partial-recipe", help="accept an image built with --recipe minimal (to test a rollout, not a node)"
        ),
    ] = False,
) -> None:
    # help: builder/clihelp.py
    from .ops import manifests as mf

    logmod.configure("auto")
    image = cliinput.not_empty(image, "--image")
    if (from_manifest is None) == (image is None):
        raise InputError("give exactly one of --from BUILD_MANIFEST or --image NAME_OR_ID")
    roles: tuple[mf.Role, ...] = mf.ROLES if role is RoleChoice.all else (role.value,)  # type: ignore[assignment]
    if kustomize and dry_run:
        raise InputError("--kustomize and --dry-run exclude each other")
    ref = mf.image_from_build_manifest(from_manifest) if from_manifest else mf.ImageRef(name=str(image))
    project = project or ref.project
    if not project:
        raise mf.ManifestError("no project: pass --project (a build manifest names its own)")
    config = load_project(project)
    sources = mf.load_sources(cluster, exclude=kustomize) if cluster else []
    with _api(config) as (cloud, _):
        if image is not None and image.isdigit():
            found = cloud.call(f"look up image {image}", lambda: cloud.client.images.get_by_id(int(image)))
            label = (found.labels or {}).get(CAPH_LABEL)
            if not label:
                raise mf.ManifestError(f"image {image} is not published: it has no {CAPH_LABEL} label")
            ref = mf.ImageRef(name=label, snapshot_id=found.id)
        elif image is not None:
            # the name first: "resolves to nothing" says more than a missing server type
            mf.check_name_exists(cloud, ref.name)
        if sources:
            rollout = mf.plan_rollout(ref, sources, roles, server_type)
        else:
            rollout = mf.fresh_templates(ref, roles, cluster_name, server_type)
        resolved = mf.check_resolution(cloud, rollout, allow_partial=allow_partial_recipe)
    snapshot_id = next(iter(resolved.values()), ref.snapshot_id)
    err = make_console(stderr=True, soft_wrap=True)
    for note in rollout.notes:
        err.print(f"note: {note}", highlight=False, markup=False)
    if not sources:
        print("".join(t.text for t in rollout.templates), end="")
        err.print(f"snapshot id: {snapshot_id}\nHCLOUD_IMAGE={snapshot_id}  (cluster-autoscaler)", highlight=False)
        return
    written, diff = mf.write_outputs(rollout, sources, kustomize=kustomize, dry_run=dry_run)
    if dry_run:
        print(diff, end="")
        return
    print(json.dumps(mf.summary(rollout, snapshot_id, written), indent=1))


@app.command("summary", **clihelp.of("summary"))
def summary_cmd(
    files: Annotated[
        list[Path],
        typer.Argument(metavar="FILE", show_default=False, help="build manifests or matrix summaries (JSON)"),
    ],
    title: Annotated[str, typer.Option(help="heading of the report")] = "Node images",
) -> None:
    # help: builder/clihelp.py
    from .ops.summary import markdown

    print(markdown(files, title=title), end="")


def main() -> None:
    install_exit_on_signal()  # `python -m builder.cli` as well as the installed entry point
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover - a handler other than ours was active
        sys.exit(130)


if __name__ == "__main__":
    main()
