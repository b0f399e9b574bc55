"""The command line's option types: choices and shared options (``builder.cli`` uses them)."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer

ProjectOpt = Annotated[
    str,
    typer.Option(
        "--project",
        "-p",
        help="project: a NAME (projects/NAME.yaml in the config directory, else ./NAME.yaml) or a path to a .yaml file",
    ),
]


VarFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--var-file",
        help="image-builder var file (Kubernetes, containerd versions) instead of the project's versions",
    ),
]


DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="only say what would be deleted")]


class LogFormat(enum.StrEnum):
    auto = "auto"  # console on a TTY, else json
    console = "console"
    json = "json"


class TableOrJson(enum.StrEnum):
    """How a list is printed: a table (plain and full width off a terminal), TSV or JSON objects."""

    table = "table"
    tsv = "tsv"
    json = "json"


OutputOpt = Annotated[
    TableOrJson, typer.Option("--output", "-o", help="table (full width off a terminal), tsv, or json objects")
]


class TextOrJson(enum.StrEnum):
    text = "text"
    json = "json"


class OsProfile(enum.StrEnum):
    """provision.profiles.PROFILES as a choice (a test holds the two equal)."""

    ubuntu_2404 = "ubuntu-2404"
    ubuntu_2204 = "ubuntu-2204"
    debian_12 = "debian-12"
    debian_13 = "debian-13"


class DiffFormat(enum.StrEnum):
    table = "table"
    markdown = "markdown"
    json = "json"


class Recipe(enum.StrEnum):
    full = "full"
    minimal = "minimal"


class RoleChoice(enum.StrEnum):
    all = "all"
    control_plane = "control-plane"
    workers = "workers"


LogFormatOpt = Annotated[LogFormat, typer.Option(help="auto (console on a TTY, else json), console or json")]
