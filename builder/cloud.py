"""The hcloud API as the builder uses it: timeouts, retries that never duplicate, smart waits.

hcloud-python has no HTTP timeout by default, retries POSTs blindly (a timed-out
``create_image`` re-sent makes a second snapshot) and does not retry 503, ``unavailable``,
bare 429 or dropped connections. So its own retries are switched off and every call goes
through ``Cloud.call``: transient errors are retried with backoff, and a call that creates
something first looks the resource up by its ``build-id`` label before re-sending.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import requests
from hcloud import APIException, Client
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from . import log as logmod
from .budget import RequestBudget
from .budget import install as install_budget
from .config import ProjectConfig, Retry
from .errors import CloudError, CredentialsError, DeadlineError

T = TypeVar("T")
log = logmod.get("capi-image.cloud")

TRANSIENT_CODES = {"rate_limit_exceeded", "unavailable", "server_error", "conflict", "locked", "timeout", "bad_gateway"}
TRANSIENT_STATUS = {409, 423, 429, 500, 502, 503, 504}
# Hetzner's codes for a token it will not take (and hcloud-python's HTTP status fallback)
REFUSED_TOKEN = {"unauthorized", "forbidden", "token_readonly", "401", "403"}
USER_AGENT = "capi-image"


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, APIException):
        return exc.code in TRANSIENT_CODES or exc.code in TRANSIENT_STATUS
    return isinstance(exc, requests.ConnectionError | requests.Timeout | requests.exceptions.ChunkedEncodingError)


_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")


def describe(exc: BaseException) -> str:
    """One readable line: the API's code and message, or for a connection failure its reason
    (``Connection refused``), not urllib3's nested repr."""
    if isinstance(exc, APIException):
        return f"{exc.code}: {exc.message}"
    if isinstance(exc, requests.ConnectionError | requests.Timeout):
        found = _ERRNO.search(str(exc))
        reason = found.group(1).strip() if found else "no answer" if isinstance(exc, requests.Timeout) else None
        if reason:
            return f"{type(exc).__name__}: {reason}"
    return f"{type(exc).__name__}: {exc}"


@dataclass
class RequestCounter:
    """Counts every HTTP request the SDK sends (a requests response hook)."""

    total: int = 0
    by_call: dict[str, int] = field(default_factory=dict)

    def hook(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.total += 1
        key = f"{response.request.method} {response.request.path_url.split('?')[0]}"
        self.by_call[key] = self.by_call.get(key, 0) + 1


def make_client(
    token: str, endpoint: str, *, timeout: tuple[float, float] = (10, 60), budget: RequestBudget | None = None
) -> tuple[Client, RequestCounter]:
    from . import __version__

    client = Client(
        token=token,
        api_endpoint=endpoint,
        application_name=USER_AGENT,
        application_version=__version__,
        timeout=timeout,
    )
    # hcloud-python 2.x keeps its retry loop and session on the private ClientBase; we pin the
    # version and test that both still work this way
    # (tests/builder/test_resilience.py::test_sdk_retries_are_off_and_requests_are_counted).
    base = client._client
    base._retry_max_retries = 0
    counter = RequestCounter()
    base._session.hooks["response"].append(counter.hook)
    if budget is not None:
        install_budget(base._session, budget)
    # A dropped connection surfaces as ChunkedEncodingError or ConnectionError: never retried
    # by requests itself either.
    return client, counter


def connect(
    config: ProjectConfig,
    token: str,
    endpoint: str,
    *,
    budget: RequestBudget | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Cloud:
    """The one way the tool sets up its API client: the project's retries and polling, a
    request counter, and the shared budget when given."""
    client, counter = make_client(token, endpoint, budget=budget)
    cloud = Cloud(client, counter, config.retry, poll_initial=config.polling.initial, sleep=sleep)
    cloud.token_hint = (
        f"check that ${config.token_env} (or the hcloud CLI's active context) holds a read & write token of the "
        f"project at {endpoint}"
    )
    return cloud


class Cloud:
    def __init__(
        self,
        client: Client,
        counter: RequestCounter,
        retry: Retry,
        *,
        poll_initial: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.counter = counter
        self.retry = retry
        self.poll_initial = poll_initial
        self.sleep = sleep
        self.retries = 0  # transient errors absorbed so far
        self.token_hint = "check that the token belongs to this project and can read & write"
        # Creates (calls with ``recover``) one of whose attempts got no answer: the API may still
        # carry it out after we stopped listening (Hetzner executes what it received).
        self.unanswered: list[str] = []

    def call(self, name: str, fn: Callable[[], T], *, recover: Callable[[], T | None] | None = None) -> T:
        """Run ``fn``, retrying transient errors. Before a retry, ``recover()`` may return the
        result of an earlier attempt that took effect although its answer was lost."""
        attempt = 0

        def note_unanswered(exc: BaseException | None) -> None:
            if recover is not None and exc is not None and not isinstance(exc, APIException) and is_transient(exc):
                self.unanswered.append(name)

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            note_unanswered(exc)
            log.warning("api.retry", call=name, attempt=state.attempt_number, error=describe(exc) if exc else None)

        retrying = Retrying(
            stop=stop_after_attempt(self.retry.attempts),
            wait=wait_exponential_jitter(
                multiplier=self.retry.initial_wait, max=self.retry.max_wait, jitter=self.retry.initial_wait
            ),
            retry=retry_if_exception(is_transient),
            before_sleep=before_sleep,
            sleep=self.sleep,
            reraise=True,
        )
        try:
            for att in retrying:
                with att:
                    attempt += 1
                    if attempt > 1:
                        self.retries += 1
                    if attempt > 1 and recover is not None:
                        found = recover()
                        if found is not None:
                            log.info("api.recovered", call=name, note="an earlier attempt took effect")
                            return found
                    return fn()
        except APIException as e:
            if str(e.code) in REFUSED_TOKEN:
                raise CredentialsError(
                    name,
                    f"the API rejected the token ({e.code}: {e.message}); {self.token_hint}",
                    code=str(e.code),
                    api_message=str(e.message),
                    correlation_id=e.correlation_id,
                ) from e
            raise CloudError(
                name,
                describe(e),
                code=str(e.code),
                api_message=str(e.message),
                details=e.details,
                correlation_id=e.correlation_id,
            ) from e
        except (requests.RequestException, OSError) as e:
            note_unanswered(e)
            raise CloudError(name, describe(e)) from e
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------ waiting
    def wait_action(
        self,
        name: str,
        action_id: int,
        deadline: float,
        *,
        cap: float = 30.0,
        started: float | None = None,
        first_look: float | None = None,
    ) -> dict[str, Any]:
        """Wait for an action with as few looks as it takes to notice its end in time.

        Hetzner reports a running action's ``progress`` in whole percent. Seen at ``e`` seconds
        after the action started (``started``: when its create call answered), progress ``p``
        bounds the action's duration D (progress linear in time): 100·e/(p+1) < D ≤ 100·e/p.
        The next look is at min(upper bound, lower bound + allowed lag), where the allowed lag is
        max(2 % of the duration, ``6 * poll_initial`` — 3 s by default): the end is noticed
        within that, and a 180 s snapshot costs three looks, a 20 s create two (instead of one
        look per second). ``cap`` bounds one sleep, for progress that is not linear. An action
        that runs past its upper bound (overrunning: progress sits at 99 %) is looked at with
        exponential backoff, up to ``cap``. Returns the final action (``status`` success or error).
        """
        t0 = time.monotonic() if started is None else started
        end = time.monotonic() + deadline
        lower, upper = 0.0, math.inf
        backoff = self.poll_initial
        wake = t0 + (4 * self.poll_initial if first_look is None else first_look)
        floor = 6 * self.poll_initial
        while True:
            now = time.monotonic()
            if wake > now:
                self.sleep(min(wake, end) - now)
            action = self.call(f"{name} (wait)", lambda: self.client.actions.get_by_id(action_id))
            if action.status != "running":
                return {"status": action.status, "error": action.error, "command": action.command}
            now = time.monotonic()
            if now >= end:
                raise DeadlineError(f"{name} failed: action {action_id} still running after {deadline:.0f}s")
            e, p = now - t0, int(action.progress or 0)
            if p >= 99 or now - t0 > upper + floor:
                wake = now + backoff  # overrunning its estimate: back off
                backoff = min(backoff * 2, cap)
                continue
            lower = max(lower, 100 * e / (p + 1))
            if p > 0:
                upper = min(upper, 100 * e / p)
            allowed = max(0.02 * lower, floor)
            # A margin for the request's own latency: the action started before its create
            # call answered, so ``e`` is a little short.
            wake = min(t0 + min(upper, lower + allowed) + 0.1, now + cap)

    def poll(self, name: str, check: Callable[[], T | None], deadline: float, *, cap: float = 10.0) -> T:
        """Call ``check`` with exponential backoff until it returns something."""
        end = time.monotonic() + deadline
        delay = self.poll_initial
        while True:
            result = check()
            if result is not None:
                return result
            now = time.monotonic()
            if now >= end:
                raise DeadlineError(f"{name}: not done after {deadline:.0f}s")
            self.sleep(max(0.05, min(delay, end - now)))
            delay = min(delay * 1.6, cap)
