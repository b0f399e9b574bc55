"""The stub backend's recording SSH endpoint (a stand-in: it proves the SSH contract only)."""

from __future__ import annotations

import time

import paramiko
import pytest
from hcloud import Client
from hcloud.images import Image
from hcloud.server_types import ServerType

from localcloud.server import LocalCloud

from ..conftest import KeyPair, new_keypair


def _user_data(host: KeyPair) -> str:
    private = host.private_openssh().replace("\n", "\n    ")
    return f"#cloud-config\nssh_keys:\n  ed25519_private: |\n    {private}\n  ed25519_public: {host.public_openssh}\n"


def _boot(client: Client, key: KeyPair, user_data: str | None = None):
    ssh_key = client.ssh_keys.create(name="stub", public_key=key.public_openssh)
    r = client.servers.create(
        name="stub-1",
        server_type=ServerType(name="cpx22"),
        image=Image(name="ubuntu-24.04"),
        ssh_keys=[ssh_key],
        user_data=user_data,
    )
    r.action.wait_until_finished()
    r.next_actions[0].wait_until_finished()
    return client.servers.get_by_id(r.server.id)


def _connect(ip: str, key: KeyPair, host: KeyPair) -> paramiko.SSHClient:
    c = paramiko.SSHClient()
    c.get_host_keys().add(ip, "ssh-ed25519", host.paramiko_key())
    c.set_missing_host_key_policy(paramiko.RejectPolicy())
    c.connect(ip, username="root", pkey=key.paramiko_key(), look_for_keys=False, allow_agent=False, timeout=5)
    return c


def test_pinned_host_key_auth_and_recording(cloud: LocalCloud, client: Client, keypair: KeyPair) -> None:
    host = new_keypair()
    server = _boot(client, keypair, _user_data(host))
    ip = server.public_net.ipv4.ip
    c = _connect(ip, keypair, host)
    stdin, out, _ = c.exec_command("cat > /etc/provenance")
    stdin.write(b"built-by=test\n")
    stdin.channel.shutdown_write()
    assert out.channel.recv_exit_status() == 0
    _, out, _ = c.exec_command("systemctl is-active containerd")
    assert out.channel.recv_exit_status() == 0 and out.read() == b""  # a stand-in answers nothing
    c.close()
    log = cloud.admin().ssh_log(server.id)
    assert [(e["user"], e["command"]) for e in log] == [
        ("root", "cat > /etc/provenance"),
        ("root", "systemctl is-active containerd"),
    ]
    assert log[0]["stdin_bytes"] == len(b"built-by=test\n")

    with pytest.raises(paramiko.BadHostKeyException):
        _connect(ip, keypair, new_keypair())  # another host key is not what the server presents
    with pytest.raises(paramiko.AuthenticationException):
        _connect(ip, new_keypair(), host)  # a key the server was not given


def test_ssh_goes_away_when_the_guest_powers_off(cloud: LocalCloud, client: Client, keypair: KeyPair) -> None:
    host = new_keypair()
    server = _boot(client, keypair, _user_data(host))
    c = _connect(server.public_net.ipv4.ip, keypair, host)
    c.exec_command("poweroff")[1].channel.recv_exit_status()
    c.close()
    end = time.monotonic() + 5
    while client.servers.get_by_id(server.id).status != "off":
        assert time.monotonic() < end
        time.sleep(0.05)
    with pytest.raises(OSError):
        _connect(server.public_net.ipv4.ip, keypair, host)
    client.servers.power_on(server).wait_until_finished()
    _connect(server.public_net.ipv4.ip, keypair, host).close()
