"""The project's request budget: a token bucket, as Hetzner describes it (3600/h, +1/s).

The one implementation of the maths: localcloud's API gate spends from it, and the builder's
client-side budget (builder/budget.py) waits on it, so both sides count alike."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    limit: int = 3600
    refill_per_second: float = 1.0
    clock: Callable[[], float] = time.time
    _tokens: float = field(init=False)
    _stamp: float = field(init=False)

    def __post_init__(self) -> None:
        self._tokens = float(self.limit)
        self._stamp = self.clock()

    def _refill(self) -> None:
        now = self.clock()
        self._tokens = min(float(self.limit), self._tokens + (now - self._stamp) * self.refill_per_second)
        self._stamp = now

    def take(self) -> bool:
        """Spend one request; False if the budget is exhausted."""
        self._refill()
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def wait_time(self) -> float:
        """Seconds until one request can be taken (0: now)."""
        self._refill()
        if self._tokens >= 1:
            return 0.0
        return math.inf if self.refill_per_second <= 0 else (1 - self._tokens) / self.refill_per_second

    def at_most(self, tokens: float) -> None:
        """Lower what is left (someone else spent it); never raises it."""
        self._refill()
        self._tokens = min(self._tokens, tokens)

    def resize(self, limit: int) -> None:
        self.limit = limit
        self._refill()

    @property
    def remaining(self) -> int:
        self._refill()
        return int(self._tokens)

    def reset_at(self) -> int:
        """UNIX time at which the bucket is full again."""
        self._refill()
        missing = self.limit - self._tokens
        if self.refill_per_second <= 0:
            return int(self._stamp)
        return math.ceil(self._stamp + missing / self.refill_per_second)

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_at()),
        }

    def refill(self) -> None:
        self._tokens, self._stamp = float(self.limit), self.clock()
