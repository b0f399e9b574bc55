"""The command line's option types: choices and shared options (``builder.cli`` uses them)."""

from __future__ import annotations

import enum
from typing import Annotated

import typer

ProjectOpt = Annotated[str, typer.Option("--project", "-p", help="config/projects/NAME.yaml")]


class LogFormat(enum.StrEnum):
    auto = "auto"  # console on a TTY, else json
    console = "console"
    json = "json"


class TableOrJson(enum.StrEnum):
    table = "table"
    json = "json"


class TextOrJson(enum.StrEnum):
    text = "text"
    json = "json"


class Recipe(enum.StrEnum):
    full = "full"
    minimal = "minimal"


class RoleChoice(enum.StrEnum):
    all = "all"
    control_plane = "control-plane"
    workers = "workers"


LogFormatOpt = Annotated[LogFormat, typer.Option(help="auto (console on a TTY, else json), console or json")]
