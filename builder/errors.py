"""The tool's one exception root, each class carrying its exit code.

Like hcloud-python's ``HCloudException``/``APIException``: callers catch ``CapiImageError`` and
read ``exit_code``; a cloud failure also carries the API's error ``code``. The CLI turns any of
them into a message and an exit status in one place (``builder.cli.ErrorMappingGroup``).

Exit codes: 0 success; 1 failed (everything created was cleaned up); 2 bad input, found before
anything was created; 3 cleanup incomplete (run ``capi-image gc``); 128+N interrupted by signal
N (cleaned up) — ``builder.interrupts.Interrupted``, a BaseException so ``except Exception``
cannot swallow it.
"""

from __future__ import annotations

from typing import ClassVar

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INPUT = 2
EXIT_CLEANUP = 3


class CapiImageError(Exception):
    """Root of every error the tool raises on purpose."""

    exit_code: ClassVar[int] = EXIT_FAILED


class InputError(CapiImageError, ValueError):
    """Bad input (config, options, files): a clear message before anything costs money."""

    exit_code = EXIT_INPUT


class FailedError(CapiImageError, RuntimeError):
    """The operation failed after it started; what it created was cleaned up."""

    exit_code = EXIT_FAILED


class CleanupIncompleteError(CapiImageError, RuntimeError):
    """Something created could not be deleted (or its deletion not confirmed): run gc."""

    exit_code = EXIT_CLEANUP


class CloudError(FailedError):
    """An API call that failed for good; the message names the call. ``code`` is the API's
    error code (``not_found``, ``locked``, ``resource_unavailable`` …) when the API answered with
    one, else None (a dropped connection, a timeout, the tool's own verdict); ``api_message`` the
    API's own text; ``details`` its structured details (which fields were invalid, …) and
    ``correlation_id`` the id Hetzner's support asks for — the message ends with it."""

    def __init__(
        self,
        call: str,
        detail: str,
        code: str | None = None,
        api_message: str | None = None,
        *,
        details: object = None,
        correlation_id: str | None = None,
    ) -> None:
        suffix = f" (correlation id {correlation_id})" if correlation_id else ""
        super().__init__(f"{call} failed: {detail}{suffix}")
        self.call = call
        self.code = code
        self.api_message = api_message
        self.details = details
        self.correlation_id = correlation_id


class CredentialsError(CloudError):
    """The API refused the token (401 unauthorized, 403 forbidden, a read-only token): the same
    one line and exit 2 from every command, however far it got."""

    exit_code = EXIT_INPUT


class DeadlineError(FailedError, TimeoutError):
    """A wait ran out of its deadline (an action, a server state, SSH): the message names what
    and how long. Also a ``TimeoutError``, which is what it is."""


class ProvisionError(FailedError):
    """A recipe step failed on the build (or boot-test) server."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"step '{step}': {message}")
        self.step = step
        self.detail = message


def exit_code_of(exc: BaseException) -> int:
    """The exit status for an exception the CLI did not expect to handle itself."""
    signum = getattr(exc, "signum", None)
    if isinstance(signum, int):  # Interrupted: as a shell reports a signal death
        return 128 + signum
    if isinstance(exc, CapiImageError):
        return exc.exit_code
    return EXIT_FAILED


__all__ = [
    "EXIT_CLEANUP",
    "EXIT_FAILED",
    "EXIT_INPUT",
    "EXIT_OK",
    "CapiImageError",
    "CleanupIncompleteError",
    "CloudError",
    "DeadlineError",
    "FailedError",
    "InputError",
    "ProvisionError",
    "exit_code_of",
]
