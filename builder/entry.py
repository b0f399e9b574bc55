"""The ``capi-image`` entry point: SIGINT/SIGTERM become a clean exit (130/143) from the very
first instruction, before the heavy imports of the CLI; a build installs its own guard later and
keeps signals from changing its outcome until the process has said what it built."""

from __future__ import annotations

import signal
import sys
from types import FrameType


def _early(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main() -> None:
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, _early)
    try:
        from .cli import main as cli_main
    except KeyboardInterrupt:  # pragma: no cover - the handler above turns it into SystemExit
        sys.exit(130)
    cli_main()


if __name__ == "__main__":
    main()
