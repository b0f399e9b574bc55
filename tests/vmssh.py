"""SSH into a localcloud VM from a test: root with the server's key, the host key pinned when
given, retried until the guest is up."""

from __future__ import annotations

import time

import paramiko
from hcloud.servers import BoundServer

from .conftest import KeyPair


def host_key_user_data(host: KeyPair) -> str:
    private = host.private_openssh().replace("\n", "\n    ")
    return f"#cloud-config\nssh_keys:\n  ed25519_private: |\n    {private}\n  ed25519_public: {host.public_openssh}\n"


def vm_ssh(server: BoundServer, key: KeyPair, host: KeyPair | None, deadline: float = 240) -> paramiko.SSHClient:
    """Connect as root, verifying the host key when one was pinned; retry until the guest is up."""
    ip = server.public_net.ipv4.ip
    end = time.monotonic() + deadline
    last: Exception | None = None
    while time.monotonic() < end:
        c = paramiko.SSHClient()
        if host is not None:
            c.get_host_keys().add(ip, "ssh-ed25519", host.paramiko_key())
            c.set_missing_host_key_policy(paramiko.RejectPolicy())
        else:
            c.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        try:
            c.connect(
                ip,
                username="root",
                pkey=key.paramiko_key(),
                look_for_keys=False,
                allow_agent=False,
                timeout=10,
                banner_timeout=30,
            )
            return c
        except paramiko.BadHostKeyException:
            raise
        except (OSError, paramiko.SSHException) as e:
            last = e
            c.close()
            time.sleep(3)
    raise TimeoutError(f"no SSH to {ip} within {deadline}s: {last}")


def vm_run(c: paramiko.SSHClient, cmd: str) -> str:
    _, out, err = c.exec_command(cmd, timeout=300)
    status = out.channel.recv_exit_status()
    text = out.read().decode()
    assert status == 0, f"{cmd}: exit {status}: {err.read().decode()}"
    return text
