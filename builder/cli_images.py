"""``capi-image images``, ``gc``, ``prune`` and ``diff``: the images and leftovers of a project."""

from __future__ import annotations

import contextlib
import functools
import json
from pathlib import Path
from typing import Annotated

import typer
import typer.core

from . import clihelp, cliinput
from . import log as logmod
from .caph import CAPH_LABEL
from .cliapp import api, app
from .cliopts import (
    DiffFormat,
    DryRunOpt,
    LogFormat,
    LogFormatOpt,
    OutputOpt,
    ProjectOpt,
    TableOrJson,
)
from .cloud import Cloud
from .errors import CleanupIncompleteError, InputError
from .projects import load_project
from .tables import show


@app.command(**clihelp.of("gc"))
def gc(
    project: ProjectOpt,
    older_than: Annotated[str, typer.Option(help="only what is older than this (90s, 30m, 2h, 1d, 1d12h)")] = "2h",
    build_id: Annotated[str | None, typer.Option(help="only this build's resources")] = None,
    dry_run: DryRunOpt = False,
    output: OutputOpt = TableOrJson.json,
    log_format: LogFormatOpt = LogFormat.auto,
) -> None:
    # help: builder/clihelp.py
    from .ops.gc import collect, parse_duration

    logmod.configure(log_format.value)
    config = load_project(project)
    age = parse_duration(older_than)
    with api(config) as (cloud, _):
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
    with api(config) as (cloud, _):
        rows = list_images(cloud, config.labels)
    show(rows, COLUMNS, output.value)


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
    dry_run: DryRunOpt = False,  # the default: accepted so every mutating command takes it
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
    with api(config) as (cloud, _):
        report = pr.execute(cloud, pr.plan(cloud, config, keep, names), yes=yes, timeouts=config.timeouts)
    rows = [d.as_dict() for d in report.decisions]
    title = f"prune {config.ref}: keep {keep} per family" + ("" if yes else " (dry run)")
    show(rows, ("id", CAPH_LABEL, "family", "action", "reason", "outcome"), output.value, title=title)
    if report.failed:
        raise CleanupIncompleteError(f"{len(report.failed)} deletion(s) failed (listed above)")


@app.command(**clihelp.of("diff"))
def diff(
    old: Annotated[str, typer.Argument(metavar="OLD", help="build manifest, SBOM, or (with -p) snapshot id or name")],
    new: Annotated[str, typer.Argument(metavar="NEW", help="the same kinds as OLD")],
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="project whose API finds snapshots given by id or name")
    ] = None,
    sbom_dir: Annotated[Path, typer.Option(help="where the builds' *.cdx.json are (snapshots' SBOMs)")] = Path("dist"),
    output: Annotated[DiffFormat, typer.Option("--output", "-o", help="table, markdown or json")] = DiffFormat.table,
) -> None:
    # help: builder/clihelp.py
    from .sbom import diff as sd

    logmod.configure("json" if output is not DiffFormat.table else "auto")
    with contextlib.ExitStack() as stack:
        lookup = None
        if project is not None:
            cloud, _ = stack.enter_context(api(load_project(project)))
            lookup = functools.partial(_snapshot_labels, cloud)
        try:
            a = sd.load_side(old, sbom_dir=sbom_dir, snapshot=lookup)
            b = sd.load_side(new, sbom_dir=sbom_dir, snapshot=lookup)
        except (OSError, ValueError) as e:
            raise InputError(str(e)) from e
    changes = sd.compare(a, b)
    if output is DiffFormat.markdown:
        print(sd.markdown(a, b, changes), end="")
    elif output is DiffFormat.json:
        print(json.dumps({"old": a.name, "new": b.name, "changes": [c.as_dict() for c in changes]}, indent=1))
    else:
        print(f"{a.name} -> {b.name}: {len(changes)} change(s)")
        show([c.as_dict() for c in changes], ("kind", "name", "change", "old", "new"), "table")


def _snapshot_labels(cloud: Cloud, spec: str) -> tuple[str, dict[str, str]]:
    """A snapshot by id or caph-image-name: its name and labels."""
    if spec.isdigit():
        image = cloud.call(f"look up image {spec}", lambda: cloud.client.images.get_by_id(int(spec)))
    else:
        found = cloud.call(
            f"look up {spec}", lambda: cloud.client.images.get_all(label_selector=f"{CAPH_LABEL}=={spec}")
        )
        if not found:
            raise InputError(f"no image has {CAPH_LABEL}={spec} in this project")
        image = found[0]
    labels = dict(image.labels or {})
    return labels.get(CAPH_LABEL) or str(image.description), labels
