"""The ``capi-image`` command line: build, plan and init here; every command registered on
``builder.cliapp.app`` (help texts: ``builder.clihelp``)."""

from __future__ import annotations

if __name__ == "__main__":  # `python -m builder.cli`: the console script's early signal handling
    from .entry import install_early

    install_early()

# After the handler above: a Ctrl-C during the imports below exits 130, without a traceback.
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
import typer.core

from . import clihelp, cliinput
from . import log as logmod
from .budget import RequestBudget
from .cliapp import api, app, override, print_error
from .cliopts import (
    LogFormat,
    LogFormatOpt,
    OsProfile,
    ProjectOpt,
    Recipe,
    TextOrJson,
    VarFileOpt,
)
from .errors import CleanupIncompleteError
from .interrupts import SignalGuard, install_exit_on_signal
from .pipeline import Build
from .pipeline.record import late_create_note, result_line
from .projects import load_project
from .report import PhaseDisplay, summary


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
    os_profile: Annotated[OsProfile | None, typer.Option("--os", help="OS profile instead of the project's os")] = None,
    recipe: Annotated[
        Recipe | None,
        typer.Option(
            help="recipe instead of the project's: full, or minimal (provenance + sysprep: the lifecycle only)"
        ),
    ] = None,
    matrix: Annotated[bool, typer.Option("--matrix", help="build every combination of the project's matrix")] = False,
    skip_unchanged: Annotated[
        bool,
        typer.Option(
            "--skip-unchanged",
            help="publish nothing when the newest published image of the family holds the same (SBOM content)",
        ),
    ] = False,
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
    config = override(config, "--os", "os", os_profile)
    config = override(config, "--recipe", "recipe", recipe)
    config = override(config, "--var-file", "versions", var_file)
    if matrix:
        from .ops.matrix import build_all

        build_all(
            config,
            manifest,
            parallel,
            keep_on_failure=keep_on_failure,
            boot_test=boot_test,
            skip_unchanged=skip_unchanged,
        )
        return
    guard = SignalGuard()
    budget = RequestBudget(config.api_budget.limit, config.api_budget.per_second, config.api_budget.reserve)
    with guard.installed():
        with api(config, budget) as (cloud, tgt):
            b = Build(config, cloud, endpoint=tgt.endpoint, build_id=build_id, keep_on_failure=keep_on_failure,
                      manifest_path=manifest, guard=guard, boot_test=boot_test,
                      skip_unchanged=skip_unchanged)  # fmt: skip
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
                print_error(late_create_note(config.gc_command(result.build_id)), label="note:")
            print(json.dumps(result_line(result, b.manifest_path)), flush=True)


@app.command(**clihelp.of("plan"))
def plan(
    project: ProjectOpt,
    var_file: VarFileOpt = None,
    output: Annotated[TextOrJson, typer.Option("--output", "-o", help="text or json")] = TextOrJson.text,
) -> None:
    # help: builder/clihelp.py
    import datetime as dt

    from .planning import plan_document, plan_text

    config = override(load_project(project), "--var-file", "versions", var_file)
    doc = logmod.scrub(plan_document(config, build_id="<build-id>", started=dt.datetime.now(dt.UTC)))
    print(
        json.dumps(doc, indent=1) if output is TextOrJson.json else plan_text(doc),
        end="\n" if output is TextOrJson.json else "",
    )


# the other commands register themselves on the app
from . import cli_images, cli_rollout  # noqa: E402, F401

__all__ = ["app", "main"]


def main() -> None:
    install_exit_on_signal()  # `python -m builder.cli` as well as the installed entry point
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover - a handler other than ours was active
        sys.exit(130)


if __name__ == "__main__":
    main()
