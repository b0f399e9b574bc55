"""One API request budget for every build in this process.

Hetzner limits a project to 3600 requests per hour (a bucket refilled at 1/s). The builds of a
matrix, and the CAPH controllers running in the same project, all draw from that bucket, so
concurrent builds must not race each other into 429s. Each request first takes a token from a
client-side bucket shared by all clients (a requests adapter); the server's
``RateLimit-Remaining`` header pulls the bucket down when someone else spent the budget. A
``reserve`` is never used, so CAPH can still create and delete machines while images build.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from localcloud.ratelimit import TokenBucket

from . import log as logmod

log = logmod.get("capi-image.budget")


class RequestBudget:
    """The shared client-side bucket (localcloud's ``TokenBucket``, the same maths as the API
    gate), minus the ``reserve``, behind a lock for the matrix's threads."""

    def __init__(
        self,
        limit: int = 3600,
        per_second: float = 1.0,
        reserve: int = 0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if limit - reserve < 1:
            raise ValueError(f"reserve {reserve} leaves nothing of the limit {limit}")
        self.bucket = TokenBucket(limit=limit - reserve, refill_per_second=per_second, clock=clock)
        self.reserve = reserve
        self.sleep = sleep
        self._lock = threading.Lock()
        self.requests = 0
        self.waited = 0.0  # seconds requests spent waiting for the budget

    @property
    def capacity(self) -> float:
        return float(self.bucket.limit)

    def acquire(self) -> None:
        """Take one request from the budget, waiting until the bucket has one."""
        while True:
            with self._lock:
                if self.bucket.take():
                    self.requests += 1
                    return
                wait = self.bucket.wait_time()
                self.waited += wait
            if wait > 5:
                log.info("api.budget.wait", seconds=round(wait, 1), note="the project's request budget is spent")
            self.sleep(wait)

    def observe(self, headers: Mapping[str, str]) -> None:
        """Follow the server's count: other clients of the project spend the same budget."""
        remaining = headers.get("RateLimit-Remaining", "").strip()
        limit = headers.get("RateLimit-Limit", "").strip()
        with self._lock:
            if limit.isdigit() and int(limit) < self.capacity + self.reserve:
                # The project's limit is smaller than configured: shrink to it, and never reserve
                # more than half of it, or the builds would wait forever.
                self.reserve = min(self.reserve, int(limit) // 2)
                self.bucket.resize(max(1, int(limit) - self.reserve))
                log.info("api.budget.adjusted", limit=int(limit), reserve=self.reserve)
            if remaining.isdigit():
                self.bucket.at_most(float(int(remaining) - self.reserve))


class BudgetAdapter(HTTPAdapter):
    def __init__(self, budget: RequestBudget, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.budget = budget

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        self.budget.acquire()
        response = super().send(request, *args, **kwargs)
        self.budget.observe(response.headers)
        return response


def install(session: requests.Session, budget: RequestBudget) -> None:
    adapter = BudgetAdapter(budget)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
