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


def first_signal_exits(signum: int, frame: FrameType | None) -> None:
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_IGN)
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
