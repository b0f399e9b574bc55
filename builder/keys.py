"""Ephemeral key material, generated in memory for one build.

- The login key (ed25519) goes to the API as the server's SSH key; its private half never
  touches the disk unencrypted.
- The host key pair is injected through cloud-init ``user_data`` (``ssh_keys``), so the very
  first SSH connection verifies the host key it expects: no trust-on-first-use.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from ruamel.yaml import YAML
from ruamel.yaml.scalarstring import LiteralScalarString


@dataclass(frozen=True)
class KeyPair:
    private: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> KeyPair:
        return cls(Ed25519PrivateKey.generate())

    @property
    def public_openssh(self) -> str:
        return (
            self.private.public_key()
            .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
            .decode()
        )

    def private_openssh(self, passphrase: bytes | None = None) -> str:
        enc: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
        )
        return self.private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, enc).decode()

    def paramiko(self) -> paramiko.PKey:
        return paramiko.Ed25519Key.from_private_key(io.StringIO(self.private_openssh()))


def host_key_user_data(host: KeyPair) -> str:
    """cloud-config that makes the guest present ``host`` as its ed25519 host key (dumped by a
    YAML library: a key's lines, any character, are quoted as YAML wants them)."""
    doc = {
        "ssh_deletekeys": True,
        # Only the ed25519 type, which ssh_keys provides: nothing is generated. An empty list is
        # what cloud-init's schema refuses (minItems 1): the server booted "degraded".
        "ssh_genkeytypes": ["ed25519"],
        "ssh_keys": {
            "ed25519_private": LiteralScalarString(host.private_openssh().strip() + "\n"),
            "ed25519_public": host.public_openssh,
        },
    }
    out = io.StringIO()
    yaml = YAML()
    yaml.width = 4096
    yaml.dump(doc, out)
    return "#cloud-config\n" + out.getvalue()
