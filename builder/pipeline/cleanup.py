"""Cleanup, which runs after every build: delete what it created, found by id and, as a net, by label.

A resource is done only when the API says it is gone. A label search that could not run proves
nothing: it is reported (the build exits 3, "run gc"), never taken as "nothing there".
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from .. import log as logmod
from ..errors import CleanupIncompleteError, CloudError, DeadlineError
from ..keys import KeyPair
from ..resources import Kind, Resources

log = logmod.get("capi-image.cleanup")


@dataclass
class Tracked:
    """The ids of what the build created, as soon as the API gave them."""

    ssh_key_id: int | None = None
    server_id: int | None = None
    server_ip: str | None = None
    image_id: int | None = None
    published: bool = False
    boot_server_id: int | None = None
    boot_key_id: int | None = None


def controlling_terminal() -> TextIO | None:
    """The process's terminal for writing (where a secret may be shown), or None."""
    try:
        return open("/dev/tty", "w")
    except OSError:
        return None


def debug_dir(build_id: str) -> Path:
    """Where --keep-on-failure puts the kept server's key: the user's state directory
    ($XDG_STATE_HOME, else ~/.local/state), not the working directory a CI job may upload."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "capi-image" / "debug" / build_id


@dataclass
class KeepForDebugging:
    """--keep-on-failure: where the key goes and how its passphrase is shown."""

    directory: Path
    login_key: KeyPair
    build_id: str
    gc_command: str
    terminal: Callable[[], TextIO | None] = controlling_terminal

    def keep(self, server_ids: list[int], ip: str | None) -> str:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        passphrase = secrets.token_urlsafe(12)
        key_file = self.directory / "id_ed25519"
        key_file.write_text(self.login_key.private_openssh(passphrase.encode()))
        key_file.chmod(0o600)
        hint = (
            f"kept server(s) {server_ids} for debugging.\n"
            f"  ssh -i {key_file} root@{ip or '<server ip>'}   (key passphrase: {{passphrase}})\n"
            f"  delete later: {self.gc_command}"
        )
        # The passphrase goes to the controlling terminal only, never to stdout or a log a CI
        # system keeps; without a terminal (CI) it goes into a file beside the key that only
        # this user can read, so the kept server can still be reached from the job.
        tty = self.terminal()
        if tty is not None:
            with tty:
                print(hint.format(passphrase=passphrase), file=tty, flush=True)
            shown = hint.format(passphrase="shown on the terminal only")
        else:
            secret = self.directory / "passphrase"
            secret.touch(mode=0o600)
            secret.write_text(passphrase + "\n")
            shown = hint.format(passphrase=f"in {secret}, readable by this user only")
        print(shown, flush=True)
        log.warning("server.kept", server_ids=server_ids, key_file=str(key_file))
        return shown


def clean_up(
    res: Resources,
    tracked: Tracked,
    *,
    failed: bool,
    build_id: str,
    gc_command: str,
    keep: KeepForDebugging | None = None,
) -> bool:
    """Delete what the build created. True when a create never got its answer (a timeout, a
    dropped connection, a signal): the API may still carry it out after the watch below, so the
    final word says "may still appear — gc removes it". Raises CleanupIncompleteError naming
    everything not deleted or not verified."""
    problems: list[str] = []
    unanswered = res.in_flight or bool(res.cloud.unanswered)
    # The label search is a net for what a failed or retried call may have created; a clean
    # run knows all its ids.
    search = res.attempted_create and (failed or res.cloud.retries > 0 or unanswered)

    def ids(tracked_ids: tuple[int | None, ...], kind: Kind) -> list[int]:
        found = {t for t in tracked_ids if t}
        if search:
            try:
                found |= set(res.find(kind))
            except CloudError as e:
                problems.append(f"find {kind} by label failed ({e}), so more may be left")
        return sorted(found)

    server_ids = ids((tracked.server_id, tracked.boot_server_id), "servers")
    kept = bool(failed and keep is not None and server_ids)
    if kept:
        assert keep is not None
        keep.keep(server_ids, tracked.server_ip)
    deleters: dict[Kind, Callable[[int], None]] = {
        "servers": res.delete_server, "SSH keys": res.delete_key, "snapshots": res.delete_image,
    }  # fmt: skip
    spared = {("snapshots", tracked.image_id)} if tracked.published else set()
    spared |= {("servers", sid) for sid in server_ids} if kept else set()

    def delete(kind: Kind, rid: int) -> None:
        if (kind, rid) in spared:
            return
        try:
            deleters[kind](rid)
        except (CloudError, DeadlineError) as e:
            problems.append(f"{_ONE[kind]} {rid}: {e}")

    for sid in server_ids:
        delete("servers", sid)
    for kid in ids((tracked.ssh_key_id, tracked.boot_key_id), "SSH keys"):
        delete("SSH keys", kid)
    if not tracked.published:
        for iid in ids((tracked.image_id,), "snapshots"):
            delete("snapshots", iid)
    if unanswered and not problems:
        _watch_late_creates(res, delete, problems)
    if problems:
        raise CleanupIncompleteError(
            "could not delete or could not verify: "
            + "; ".join(problems)
            + f" — run `{gc_command}` (label build-id={build_id})"
        )
    return unanswered


_ONE: dict[Kind, str] = {"servers": "server", "SSH keys": "SSH key", "snapshots": "snapshot"}


def _watch_late_creates(res: Resources, delete: Callable[[Kind, int], None], problems: list[str]) -> None:
    """For ``timeouts.settle`` seconds, search by label and delete what a create whose answer
    never came made meanwhile (what this build still has is spared by ``delete``)."""
    res.log.info("cleanup.watch", seconds=res.timeouts.settle, unanswered=res.cloud.unanswered, in_flight=res.in_flight)
    end = time.monotonic() + res.timeouts.settle
    while True:
        for kind in ("servers", "SSH keys", "snapshots"):
            try:
                for rid in res.find(kind):
                    delete(kind, rid)
            except CloudError as e:
                problems.append(f"find {kind} by label failed ({e}), so more may be left")
                return
        if time.monotonic() >= end:
            return
        time.sleep(min(1.0, max(0.0, end - time.monotonic())))


__all__ = ["KeepForDebugging", "Tracked", "clean_up", "controlling_terminal"]
