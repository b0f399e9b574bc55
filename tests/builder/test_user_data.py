"""The build's cloud-config (builder/keys.py): a YAML document cloud-init reads as meant."""

from __future__ import annotations

import io

import paramiko
from ruamel.yaml import YAML

from builder.keys import KeyPair, host_key_user_data
from localcloud.cloudinit import host_private_key


def test_user_data_pins_the_host_key_and_generates_nothing_else() -> None:
    host = KeyPair.generate()
    text = host_key_user_data(host)
    assert text.startswith("#cloud-config\n")
    doc = YAML(typ="safe").load(text)
    assert doc["ssh_deletekeys"] is True
    # cloud-init >= 24's schema refuses an empty list (the server booted "degraded").
    assert doc["ssh_genkeytypes"] == ["ed25519"]
    assert doc["ssh_keys"]["ed25519_public"] == host.public_openssh
    private = host_private_key(text)
    assert private is not None
    loaded = paramiko.Ed25519Key.from_private_key(io.StringIO(private))
    assert loaded.get_base64() == host.paramiko().get_base64()
