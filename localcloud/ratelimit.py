"""The project's request budget: a token bucket, as Hetzner describes it (3600/h, +1/s)."""

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
