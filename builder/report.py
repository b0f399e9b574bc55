"""Human-facing output: a live phase display on a terminal and a summary table at the end."""

from __future__ import annotations

import sys
import time
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from .pipeline import PHASES


class PhaseDisplay:
    """Shows each phase with its state and elapsed time; silent when not on a TTY."""

    def __init__(self, enabled: bool | None = None) -> None:
        self.console = Console(stderr=True)
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.state: dict[str, str] = {}
        self.started: dict[str, float] = {}
        self.ended: dict[str, float] = {}
        self.live: Live | None = None

    def _table(self) -> Table:
        t = Table(title="capi-image build", show_edge=False)
        t.add_column("phase")
        t.add_column("state")
        t.add_column("elapsed", justify="right")
        for p in PHASES:
            st = self.state.get(p, "")
            if p in self.started:
                elapsed = self.ended.get(p, time.monotonic()) - self.started[p]
                t.add_row(p, st, f"{elapsed:.1f}s")
            else:
                t.add_row(p, "", "")
        return t

    def __enter__(self) -> PhaseDisplay:
        if self.enabled:
            self.live = Live(self._table(), console=self.console, refresh_per_second=4, transient=True)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)

    def __call__(self, phase: str, state: str) -> None:
        now = time.monotonic()
        if state == "start":
            self.started[phase] = now
            self.state[phase] = "running"
        else:
            self.ended[phase] = now
            self.state[phase] = state
        if self.live is not None:
            self.live.update(self._table())


def summary(manifest: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console(stderr=True)
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
