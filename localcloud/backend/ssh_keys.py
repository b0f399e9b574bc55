"""SSH keys: create, update, delete (``/ssh_keys``)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from ..errors import APIError, invalid_input
from ..labels import validate_labels
from ..models import SSHKey
from .core import BackendCore

_PUBKEY = re.compile(r"^(ssh-(rsa|ed25519|dss)|ecdsa-sha2-nistp(256|384|521)|sk-\S+)\s+([A-Za-z0-9+/=]+)(\s.*)?$", re.S)


def ssh_fingerprint(public_key: str) -> str:
    m = _PUBKEY.match(public_key.strip())
    if not m:
        raise invalid_input("public_key", "invalid public key")
    try:
        blob = base64.b64decode(m.group(4), validate=True)
        if not m.group(1).startswith("sk-"):
            # The whole key, not just its shape: "ssh-ed25519 AAAA" is no key (Hetzner refuses it).
            serialization.load_ssh_public_key(f"{m.group(1)} {m.group(4)}".encode())
    except (binascii.Error, ValueError, UnsupportedAlgorithm) as e:
        raise invalid_input("public_key", "invalid public key") from e
    digest = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    return ":".join(digest[i : i + 2] for i in range(0, 32, 2))


class SSHKeys(BackendCore):
    def create_ssh_key(self, name: Any, public_key: Any, labels: Any) -> SSHKey:
        if not isinstance(name, str) or not name:
            raise invalid_input("name", "is required")
        if not isinstance(public_key, str) or not public_key:
            raise invalid_input("public_key", "is required")
        labels = validate_labels(labels)
        fingerprint = ssh_fingerprint(public_key)
        for k in self.ssh_keys.values():
            if k.name == name:
                raise APIError(
                    "uniqueness_error", "SSH key with the same name already exists", {"fields": [{"name": "name"}]}
                )
            if k.fingerprint == fingerprint:
                raise APIError(
                    "uniqueness_error",
                    "SSH key with the same fingerprint already exists",
                    {"fields": [{"name": "public_key"}]},
                )
        key = SSHKey(self._next_id("ssh_key"), name, fingerprint, public_key.strip(), labels)
        self.ssh_keys[key.id] = key
        self._save()
        return key

    def update_ssh_key(self, key_id: int, name: Any, labels: Any) -> SSHKey:
        key = self.get_ssh_key(key_id)
        if name is not None:
            if not isinstance(name, str) or not name:
                raise invalid_input("name", "must be a non-empty string")
            if any(k.name == name and k.id != key_id for k in self.ssh_keys.values()):
                raise APIError(
                    "uniqueness_error", "SSH key with the same name already exists", {"fields": [{"name": "name"}]}
                )
        new_labels = validate_labels(labels) if labels is not None else None
        if name is not None:
            key.name = name
        if new_labels is not None:
            key.labels = new_labels
        self._save()
        return key

    def delete_ssh_key(self, key_id: int) -> None:
        self.get_ssh_key(key_id)
        del self.ssh_keys[key_id]
        self._save()
