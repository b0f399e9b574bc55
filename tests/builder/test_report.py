"""The live phase display (builder/report.py) on a terminal: rich's progress, one line a phase."""

from __future__ import annotations

import io

from rich.console import Console

from builder.pipeline import PHASES
from builder.report import PhaseDisplay


def test_the_display_follows_every_phase() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    with PhaseDisplay(enabled=True, console=console) as display:
        display("preflight", "start")
        display("preflight", "done")
        display("ssh-key", "start")
        display("ssh-key", "failed")
        display("not-a-phase", "start")  # ignored, not a crash
        tasks = {t.description: t for t in display.progress.tasks}
        assert list(tasks) == list(PHASES)
        assert tasks["preflight"].fields["state"] == "done" and tasks["preflight"].finished
        assert tasks["ssh-key"].fields["state"] == "failed"
        assert not tasks["server"].started
    assert "preflight" in out.getvalue()


def test_off_a_terminal_it_prints_nothing() -> None:
    out = io.StringIO()
    with PhaseDisplay(enabled=False, console=Console(file=out)) as display:
        display("preflight", "start")
    assert out.getvalue() == ""
