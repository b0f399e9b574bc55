"""Human-facing output: a live phase display on a terminal and a summary table at the end."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import log as logmod
from .pipeline import PHASES
from .tables import console as make_console


class PhaseDisplay:
    """Each phase as a line of rich's progress display (spinner while it runs, its state and
    elapsed time); silent when not on a TTY."""

    def __init__(self, enabled: bool | None = None, console: Console | None = None) -> None:
        self.console = console or make_console(stderr=True)
        # on a terminal, with console logs (JSON logs are for machines: no display between them)
        self.enabled = (sys.stderr.isatty() and logmod.current_format() == "console") if enabled is None else enabled
        self.progress = Progress(
            SpinnerColumn(finished_text="·"),
            TextColumn("{task.description:<10}"),
            TextColumn("{task.fields[state]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
            disable=not self.enabled,
        )
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> PhaseDisplay:
        for p in PHASES:
            self.tasks[p] = self.progress.add_task(p, total=1, start=False, state="")
        self.progress.__enter__()
        if self.enabled:
            logmod.route(self.console)
        return self

    def __exit__(self, *exc: object) -> None:
        logmod.route(None)
        self.progress.__exit__(None, None, None)

    def __call__(self, phase: str, state: str) -> None:
        task = self.tasks.get(phase)
        if task is None:
            return
        if state == "start":
            self.progress.start_task(task)
            self.progress.update(task, state="running")
        elif state == "skipped":
            self.progress.update(task, state="skipped", completed=1)
        else:
            self.progress.update(task, state=state, completed=1)
            self.progress.stop_task(task)


def summary(manifest: dict[str, Any], console: Console | None = None) -> None:
    console = console or make_console(stderr=True)
    t = Table(title=f"build {manifest['build_id']}: {manifest['result']}")
    t.add_column("what")
    t.add_column("value")
    for phase, seconds in manifest.get("phases", {}).items():
        t.add_row(f"phase {phase}", f"{seconds:.1f}s")
    for step in manifest.get("steps", []):
        t.add_row(f"step {step['name']}", f"{step['seconds']:.1f}s")
    t.add_row("snapshot id", str(manifest.get("snapshot_id")))
    t.add_row("caph-image-name", str(manifest.get("caph_image_name")))
    t.add_row("API requests", str(manifest.get("api_requests")))
    for k, v in sorted((manifest.get("labels") or {}).items()):
        t.add_row(f"label {k}", v)
    if manifest.get("error"):
        t.add_row("error", manifest["error"])
    console.print(t)
