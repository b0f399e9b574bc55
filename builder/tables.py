"""Lists for people and for scripts: a table on a terminal; off a terminal a plain table at full
width (never cut at 80 columns: image names are what the reader copies); TSV and JSON on request."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table


def console(*, stderr: bool = False, soft_wrap: bool = False) -> Console:
    """The one way the tool makes a rich Console: NO_COLOR (no-color.org) means no escape codes
    at all (rich's own NO_COLOR support keeps bold and italics)."""
    plain = bool(os.environ.get("NO_COLOR"))
    return Console(stderr=stderr, soft_wrap=soft_wrap, color_system=None if plain else "auto")


def show(rows: list[dict[str, Any]], columns: Sequence[str], output: str, *, title: str | None = None) -> None:
    """``output``: table, tsv or json (the rows as objects, every key)."""
    if output == "json":
        print(json.dumps(rows, indent=1))
        return
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    if output == "tsv":
        print("\t".join(columns))
        for line in cells:
            print("\t".join(v.replace("\t", " ") for v in line))
        return
    if sys.stdout.isatty():
        t = Table(title=title)
        for c in columns:
            t.add_column(c, overflow="fold")  # a name wraps, never ends in an ellipsis
        for line in cells:
            t.add_row(*line)
        console().print(t)
        return
    widths = [max([len(c), *(len(line[i]) for line in cells)]) for i, c in enumerate(columns)]
    if title:
        print(title)
    for line in [list(columns), *cells]:
        print("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    return "" if value is None else str(value)
