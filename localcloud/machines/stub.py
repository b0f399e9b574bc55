"""Stand-in machines: API state plus a *recording* SSH endpoint. Never proof of provisioning.

Each running stub server listens on its public IPv4 (127.0.0.N) port 22 with an in-process
paramiko SSH server. It accepts root with the server's SSH keys, presents the host key given in
cloud-config ``user_data`` (``ssh_keys: {ed25519_private: …}``) if any, records every command
with the bytes sent on stdin, and answers every command with exit status 0 and no output.
Used for lifecycle, fault and matrix tests where the node recipe is not under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import paramiko
from paramiko.common import (
    AUTH_FAILED,
    AUTH_SUCCESSFUL,
    OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED,
    OPEN_SUCCEEDED,
)

from ..cloudinit import host_private_key
from ..models import Image, Server
from .base import PowerOffCallback, SnapshotResult, SystemImage

log = logging.getLogger("localcloud.stub")

# A realistic, fixed catalog: the names CAPH users pick, for both architectures.
STUB_SYSTEM_IMAGES = [
    SystemImage(name, arch, flavor, version, desc, 5.0)
    for arch in ("x86", "arm")
    for name, flavor, version, desc in (
        ("ubuntu-24.04", "ubuntu", "24.04", "Ubuntu 24.04"),
        ("ubuntu-22.04", "ubuntu", "22.04", "Ubuntu 22.04"),
        ("debian-12", "debian", "12", "Debian 12"),
    )
    # Added later: after the first six, so their ids stay what clients and tests know.
] + [SystemImage("debian-13", arch, "debian", "13", "Debian 13", 5.0) for arch in ("x86", "arm")]

# Stand-in snapshots report this size; there is no disk behind them.
STUB_IMAGE_SIZE_GB = 0.42


def _load_private_key(text: str) -> paramiko.PKey:
    for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return cls.from_private_key(io.StringIO(text))
        except (paramiko.SSHException, ValueError):
            continue
    raise ValueError("unsupported host key in user_data")


def _public_blob(line: str) -> bytes:
    import base64

    return base64.b64decode(line.split()[1])


@dataclass
class Recorded:
    time: float
    user: str
    command: str
    stdin: bytes

    def to_json(self) -> dict[str, Any]:
        return {"time": self.time, "user": self.user, "command": self.command, "stdin_bytes": len(self.stdin)}


@dataclass
class _StubMachine:
    server_id: int
    ip: str
    port: int
    host_key: paramiko.PKey
    authorized: list[bytes]
    log: list[Recorded] = field(default_factory=list)
    listener: socket.socket | None = None
    thread: threading.Thread | None = None
    transports: list[paramiko.Transport] = field(default_factory=list)
    power_off_timer: asyncio.TimerHandle | None = None


@dataclass(frozen=True)
class StubAnswer:
    """Commands matching ``match`` (a regular expression, searched) print ``stdout``."""

    match: str
    stdout: str


class _Interface(paramiko.ServerInterface):
    def __init__(
        self, machine: _StubMachine, on_command: Any, command_seconds: float, answers: list[StubAnswer]
    ) -> None:
        self.machine = machine
        self.on_command = on_command
        self.command_seconds = command_seconds
        self.answers = answers
        self.user = ""

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        if username == "root" and key.asbytes() in self.machine.authorized:
            self.user = username
            return AUTH_SUCCESSFUL
        return AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return OPEN_SUCCEEDED if kind == "session" else OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_pty_request(self, *args: Any) -> bool:
        return True

    def check_channel_env_request(self, channel: Any, name: bytes, value: bytes) -> bool:
        return True

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        threading.Thread(target=self._answer, args=(channel, command.decode(errors="replace")), daemon=True).start()
        return True

    def _answer(self, channel: paramiko.Channel, command: str) -> None:
        # Drain stdin until the client signals EOF or goes quiet, so uploads piped in are recorded.
        data = bytearray()
        channel.settimeout(0.05)
        try:
            while True:
                chunk = channel.recv(65536)
                if not chunk:
                    break
                data += chunk
        except (TimeoutError, OSError):
            pass
        rec = Recorded(time.time(), self.user, command, bytes(data))
        self.machine.log.append(rec)
        if self.command_seconds > 0:
            time.sleep(self.command_seconds)
        try:
            # a canned answer (the admin API's /stub/answers), else nothing: the stand-in's rule
            answer = next((a for a in self.answers if re.search(a.match, command)), None)
            if answer is not None:
                channel.sendall(answer.stdout.encode())
            channel.send_exit_status(0)
            channel.shutdown_write()
            channel.close()
        except (OSError, EOFError, paramiko.SSHException):
            pass
        self.on_command(self.machine, command)


class StubDriver:
    """Machine driver whose servers are stand-ins (see module docstring)."""

    kind = "stub"

    def __init__(
        self, *, guest_shutdown_seconds: float = 1.0, command_seconds: float = 0.0, ssh_port: int = 22
    ) -> None:
        self.guest_shutdown_seconds = guest_shutdown_seconds
        self.command_seconds = command_seconds
        self.ssh_port = ssh_port
        self.machines: dict[int, _StubMachine] = {}
        # What a command matching a pattern prints (tests of code that reads a machine's answers,
        # e.g. the SBOM's package list). Labelled stand-in output, set through the admin API.
        self.answers: list[StubAnswer] = []
        self._power_off_cb: PowerOffCallback = lambda _sid: None
        self._loop: asyncio.AbstractEventLoop | None = None

    def system_images(self) -> list[SystemImage]:
        return list(STUB_SYSTEM_IMAGES)

    def set_power_off_callback(self, cb: PowerOffCallback) -> None:
        self._power_off_cb = cb

    def describe(self) -> dict[str, Any]:
        return {
            str(m.server_id): {
                "kind": self.kind,
                "ip": m.ip,
                "listening": m.listener is not None,
                "ssh_log": [r.to_json() for r in m.log],
            }
            for m in self.machines.values()
        }

    def ssh_log(self, server_id: int) -> list[Recorded]:
        m = self.machines.get(server_id)
        return list(m.log) if m else []

    async def create(self, server: Server, image: Image) -> None:
        pem = host_private_key(server.user_data)
        try:
            host_key = _load_private_key(pem) if pem else None
        except ValueError:
            # As cloud-init with a key it cannot use: the guest comes up with another host key,
            # and a client pinning the one it sent sees a mismatch — no background error here.
            log.warning("server %s: user_data host key unusable; a fresh one instead", server.id)
            host_key = None
        if host_key is None:
            host_key = paramiko.Ed25519Key.from_private_key(io.StringIO(_fresh_ed25519()))
        self.machines[server.id] = _StubMachine(
            server.id, server.ipv4, self.ssh_port, host_key, [_public_blob(k) for k in server.ssh_keys]
        )

    async def start(self, server: Server) -> None:
        self._loop = asyncio.get_running_loop()
        m = self.machines[server.id]
        if m.listener is not None:
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((m.ip, m.port))
        sock.listen(16)
        m.listener = sock
        m.thread = threading.Thread(
            target=self._accept_loop, args=(m, sock), daemon=True, name=f"stub-ssh-{m.server_id}"
        )
        m.thread.start()

    def _accept_loop(self, m: _StubMachine, sock: socket.socket) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return  # listener closed: machine powered off
            try:
                t = paramiko.Transport(conn)
                t.add_server_key(m.host_key)
                t.start_server(server=_Interface(m, self._on_command, self.command_seconds, self.answers))
                m.transports.append(t)
            except (paramiko.SSHException, EOFError, OSError):
                conn.close()

    def _on_command(self, m: _StubMachine, command: str) -> None:
        # A guest told to power off does so, as a real one would, a moment after answering.
        words = command.replace(";", " ").split()
        powers_off = any(w in ("poweroff", "halt") for w in words) or ("shutdown" in words and "-r" not in words)
        if powers_off and self._loop is not None:
            self._loop.call_soon_threadsafe(self._schedule_power_off, m.server_id)

    def _schedule_power_off(self, server_id: int) -> None:
        m = self.machines.get(server_id)
        if m is None or m.listener is None or m.power_off_timer is not None:
            return
        loop = asyncio.get_running_loop()
        m.power_off_timer = loop.call_later(self.guest_shutdown_seconds, self._guest_off, server_id)

    def _guest_off(self, server_id: int) -> None:
        m = self.machines.get(server_id)
        if m is None:
            return
        m.power_off_timer = None
        self._stop_listening(m)
        self._power_off_cb(server_id)

    def _stop_listening(self, m: _StubMachine) -> None:
        if m.power_off_timer is not None:
            m.power_off_timer.cancel()
            m.power_off_timer = None
        if m.listener is not None:
            with contextlib.suppress(OSError):
                m.listener.shutdown(socket.SHUT_RDWR)
            m.listener.close()
            m.listener = None
        for t in m.transports:
            t.close()
        m.transports.clear()
        if m.thread is not None:
            m.thread.join(timeout=2)
            m.thread = None

    async def acpi_shutdown(self, server: Server) -> None:
        self._schedule_power_off(server.id)

    async def poweroff(self, server: Server) -> None:
        m = self.machines.get(server.id)
        if m is not None:
            self._stop_listening(m)

    async def reset(self, server: Server) -> None:
        await self.poweroff(server)
        await self.start(server)

    async def snapshot(self, server: Server, image_id: int) -> SnapshotResult:
        return SnapshotResult(image_size_gb=STUB_IMAGE_SIZE_GB)

    async def delete_image(self, image: Image) -> None:
        return None

    async def delete(self, server: Server) -> None:
        m = self.machines.pop(server.id, None)
        if m is not None:
            self._stop_listening(m)

    async def close(self) -> None:
        for m in list(self.machines.values()):
            self._stop_listening(m)
        self.machines.clear()


def _fresh_ed25519() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return (
        Ed25519PrivateKey.generate()
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
        .decode()
    )
