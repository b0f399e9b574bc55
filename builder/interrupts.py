"""SIGINT/SIGTERM become an exception in the main thread, so ``finally`` blocks clean up.

While cleanup runs, further signals are logged and ignored: a second Ctrl-C must not leave a
half-deleted build behind.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType

from . import log as logmod

log = logmod.get("capi-image.signals")


class Interrupted(BaseException):
    """The build was asked to stop. BaseException, so ``except Exception`` cannot swallow it."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum


class SignalGuard:
    def __init__(self) -> None:
        self.shielded = False
        self.received: int | None = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.shielded:
            log.warning("signal.deferred", signal=signal.Signals(signum).name, note="cleanup in progress, not stopping")
            self.received = self.received or signum
            return
        self.received = signum
        raise Interrupted(signum)

    @contextlib.contextmanager
    def installed(self) -> Iterator[SignalGuard]:
        if threading.current_thread() is not threading.main_thread():
            yield self  # signals only reach the main thread; in-process callers run elsewhere
            return
        old = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    @contextlib.contextmanager
    def shield(self) -> Iterator[None]:
        """No Interrupted is raised inside this block (cleanup)."""
        previous, self.shielded = self.shielded, True
        try:
            yield
        finally:
            self.shielded = previous


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
