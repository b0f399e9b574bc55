"""Servers made through the SDK for the localcloud API tests."""

from __future__ import annotations

from hcloud import Client
from hcloud.images import Image
from hcloud.server_types import ServerType

from ..conftest import KeyPair, new_keypair


def make_server(client: Client, name: str, key: KeyPair | None = None, wait: bool = True, **kw: object):
    keys = [client.ssh_keys.create(name=f"key-{name}", public_key=(key or new_keypair()).public_openssh)]
    r = client.servers.create(
        name=name, server_type=ServerType(name="cpx22"), image=Image(name="debian-12"), ssh_keys=keys, **kw
    )
    if wait:
        r.action.wait_until_finished()
        for a in r.next_actions:
            a.wait_until_finished()
    return r
