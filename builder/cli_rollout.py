"""``capi-image manifests`` and ``summary``: an image into Cluster API manifests, builds into a report."""

from __future__ import annotations

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
    RoleChoice,
)
from .errors import InputError
from .projects import load_project
from .tables import console as make_console


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
    with api(config) as (cloud, _):
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
