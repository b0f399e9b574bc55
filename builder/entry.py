"""The ``capi-image`` entry point: SIGINT/SIGTERM become a clean exit (130/143) from the very
first instruction, before the heavy imports of the CLI; a build installs its own guard later and
keeps signals from changing its outcome until the process has said what it built.

The first signal decides the exit code: once it arrived, later ones (a second Ctrl-C, a
SIGTERM from a CI runner right after) are ignored while the process unwinds.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType

_decided = False


def first_signal_exits(signum: int, frame: FrameType | None) -> None:
    """Exit 128+N for the first signal. Later ones are blocked at the kernel (not SIG_IGN: a
    signal already caught but not yet run by Python would then raise "ignored due to race
    condition"; not a Python handler alone: interpreter shutdown resets those to the default,
    death by signal); one caught before the block is run here and dropped."""
    global _decided
    if _decided:
        return
    _decided = True
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    raise SystemExit(128 + signum)


def install_early() -> None:
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, first_signal_exits)


def main() -> None:
    install_early()
    try:
        from .cli import main as cli_main
    except KeyboardInterrupt:  # pragma: no cover - the handler above turns it into SystemExit
        sys.exit(130)
    cli_main()


if __name__ == "__main__":
    main()
