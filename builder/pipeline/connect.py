"""Reaching a new server: SSH with the pinned host key, bounded retries, then cloud-init."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .. import log as logmod
from ..cloud import Cloud
from ..config import Timeouts
from ..errors import DeadlineError, ProvisionError
from ..keys import KeyPair
from ..localmirror import admin_base
from ..ssh import Session

log = logmod.get("capi-image.build")


def connect(
    cloud: Cloud,
    timeouts: Timeouts,
    ip: str,
    login: KeyPair,
    host: KeyPair,
    *,
    hint: str = "",
    answered: Callable[[], None] = lambda: None,
    stopping: Callable[[], int | None] | None = None,
) -> Session:
    """SSH until it answers (backoff, ``timeouts.ssh``), then ``cloud-init status --wait``.
    ``hint`` is added to a timeout's message (where the serial console can be read);
    ``answered`` is called the moment SSH answers; ``stopping`` names the signal that stops the
    build, which cuts off a running command."""
    session = Session(ip, login, host, stopping=stopping)
    try:
        cloud.poll("SSH", lambda: True if session.try_connect() else None, timeouts.ssh, cap=10)
    except DeadlineError as e:
        raise DeadlineError(f"{e}{hint}") from e
    answered()
    # Exit 2 means "done, with recoverable errors" (cloud-init >= 23.4): usable, but say so.
    try:
        status = session.run(
            "cloud-init status --wait >/dev/null 2>&1 && echo done || echo rc=$?",
            step="cloud-init",
            timeout=timeouts.cloud_init,
        ).strip()
    except BaseException:
        session.close()  # the caller never gets the session to close
        raise
    if status not in ("", "done"):
        if status == "rc=2":
            log.warning("cloud_init.degraded", note="cloud-init finished with recoverable errors")
        else:
            session.close()
            raise ProvisionError("cloud-init", f"cloud-init failed ({status})")
    return session


def console_hint(endpoint: str, state_dir: Path, server_id: int) -> str:
    """Where a localcloud server's serial console can still be read (Hetzner has no API for
    it: its web console is interactive)."""
    path = state_dir / "consoles" / f"{server_id}.log"
    return (
        f" — serial console: {admin_base(endpoint)}/__localcloud/servers/{server_id}/console "
        f"(kept after the server is deleted; an embedded localcloud keeps it in {path})"
    )
