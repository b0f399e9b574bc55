"""What localcloud reads from and writes for cloud-init."""

from __future__ import annotations

import io
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError


def parse_cloud_config(user_data: str | None) -> dict[str, Any]:
    """The cloud-config mapping in ``user_data``, or {} if it is not cloud-config."""
    if not user_data or not user_data.lstrip().startswith("#cloud-config"):
        return {}
    try:
        data = YAML(typ="safe").load(io.StringIO(user_data))
    except YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def host_private_key(user_data: str | None, kind: str = "ed25519") -> str | None:
    """The PEM/OpenSSH host private key cloud-init will install from ``ssh_keys``, if any."""
    keys = parse_cloud_config(user_data).get("ssh_keys")
    if isinstance(keys, dict):
        value = keys.get(f"{kind}_private")
        if isinstance(value, str):
            return value
    return None


def meta_data(server_id: int, hostname: str, public_keys: list[str]) -> str:
    """NoCloud meta-data. Keys go here, not into user-data, so user-data stays verbatim."""
    out = io.StringIO()
    YAML(typ="safe").dump(
        {"instance-id": f"i-{server_id}", "local-hostname": hostname, "public-keys": list(public_keys)}, out
    )
    return out.getvalue()


NETWORK_CONFIG = "version: 2\nethernets:\n  eth0:\n    dhcp4: true\n"
