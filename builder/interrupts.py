"""SIGINT/SIGTERM become an exception in the main thread, so ``finally`` blocks clean up.

After the first signal, and while cleanup runs, further signals are counted and ignored: a
second Ctrl-C (or a storm of them) must not leave a half-deleted build behind.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType

from . import log as logmod
from .entry import first_signal_exits

log = logmod.get("capi-image.signals")


class Interrupted(BaseException):
    """The build was asked to stop. BaseException, so ``except Exception`` cannot swallow it."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum


class SignalGuard:
    """The handler only records: no logging, no locks (a handler that logged through structlog's
    printer deadlocked on its lock when a signal landed mid-print). The first signal raises
    Interrupted; every later one — and any during cleanup — is only counted and reported when
    the shield ends, so a storm of signals cannot abort cleanup."""

    def __init__(self) -> None:
        self.shielded = False
        # Sticky once cleanup has begun: from then on the outcome is being decided and reported,
        # and a signal must not turn it into "interrupted" (a published image, say).
        self.finishing = False
        self.received: int | None = None
        self.deferred: list[int] = []

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.shielded or self.finishing or self.received is not None:
            self.deferred.append(signum)
            return
        self.received = signum
        raise Interrupted(signum)

    @contextlib.contextmanager
    def installed(self) -> Iterator[SignalGuard]:
        if threading.current_thread() is not threading.main_thread():
            yield self  # signals only reach the main thread; in-process callers run elsewhere
            return
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, self._handle)
        try:
            yield self
        finally:
            # Not the old handlers: the outcome is decided and being reported (the JSON line,
            # the exit code); a signal now must not turn a published image into "interrupted"
            # or kill the process before it says what it built. SIG_IGN, not a Python handler:
            # interpreter shutdown resets Python handlers to the default (death by signal) but
            # leaves an ignored signal ignored.
            for s in (signal.SIGINT, signal.SIGTERM):
                signal.signal(s, signal.SIG_IGN)

    @contextlib.contextmanager
    def shield(self) -> Iterator[None]:
        """No Interrupted is raised inside this block (cleanup)."""
        previous, self.shielded, self.finishing = self.shielded, True, True
        try:
            yield
        finally:
            self.shielded = previous
            if self.deferred:
                names = sorted({signal.Signals(s).name for s in self.deferred})
                log.warning("signal.deferred", signals=names, count=len(self.deferred), note="cleanup was not stopped")
                self.deferred.clear()


class StopSignal:
    """Tells builds running in worker threads (a matrix) to stop: signals reach only the main
    thread, which sets this; each build notices it at its next phase or wait."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signum = 0

    def set(self, signum: int) -> None:
        self.signum = signum
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def sleeper(self, guard: SignalGuard) -> Callable[[float], None]:
        """A sleep for the build's Cloud: raises Interrupted when stopped, except while the
        build's cleanup runs (shielded), which must finish its waits."""

        def sleep(seconds: float) -> None:
            if guard.shielded:
                time.sleep(seconds)
            elif self._event.wait(seconds):
                raise Interrupted(self.signum)

        return sleep

    def check(self, guard: SignalGuard) -> None:
        if self._event.is_set() and not guard.shielded:
            raise Interrupted(self.signum)


def exit_on_signal(signum: int, frame: FrameType | None) -> None:
    """The process-wide handler until a build installs its guard: a clean exit (130/143), the
    first signal deciding it (later ones are ignored while the process unwinds)."""
    first_signal_exits(signum, frame)


def install_exit_on_signal() -> None:
    if threading.current_thread() is threading.main_thread():
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, exit_on_signal)
