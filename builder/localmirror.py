"""The artifact mirror of a localcloud endpoint, for projects that name ``localcloud`` as their
mirror (``provision.artifacts.mirror`` / ``provision.registry_mirror.url``).

Asked for in preflight, before anything is created, over localcloud's admin API
(``GET /__localcloud/mirror``): where its VMs reach the mirror, and which versions it serves.
A missing, unpopulated or unreachable mirror, or a var file asking for versions the mirror does
not have, is bad input (exit 2) whose message names the command that fixes it. Hetzner has no
such API: a project building there sets real URLs instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from provision.versions import Versions

from .config import ConfigError

# The var-file keys whose artifacts the mirror holds in a few versions only (one per node shape).
PINNED_KEYS = (
    "kubernetes_semver",
    "kubernetes_deb_version",
    "containerd_version",
    "runc_version",
    "kubernetes_cni_semver",
    "crictl_version",
)
POPULATE = "make artifacts  (or: python -m localcloud artifacts)"


class MirrorUnavailableError(ConfigError):
    """The localcloud mirror the project names cannot serve this build."""


@dataclass(frozen=True)
class LocalMirror:
    guest_url: str  # as the endpoint's VMs see it
    versions: dict[str, list[str]]
    standins: tuple[str, ...]
    registry_log: str | None = None  # the host's URL of the registry's pull log


def admin_base(endpoint: str) -> str:
    """``http://host:port`` of an API endpoint ``http://host:port/v1``."""
    return endpoint.rstrip("/").removesuffix("/v1")


def lookup(endpoint: str, versions: Versions, arch: str, *, timeout: float = 10.0) -> LocalMirror:
    url = f"{admin_base(endpoint)}/__localcloud/mirror"
    try:
        r = httpx.get(url, timeout=timeout)
        info: Any = r.json() if r.status_code == 200 else None
    except (httpx.HTTPError, ValueError) as e:
        raise MirrorUnavailableError(
            f"the project's mirror is 'localcloud', but {endpoint} did not answer {url} ({type(e).__name__}): "
            "point HCLOUD_ENDPOINT at a running localcloud, or set real artifact URLs"
        ) from e
    if not isinstance(info, dict):
        raise MirrorUnavailableError(
            f"the project's mirror is 'localcloud', but {endpoint} is not a localcloud ({url} answered "
            f"{r.status_code}): point HCLOUD_ENDPOINT at a running localcloud, or set real artifact URLs"
        )
    if not info.get("populated"):
        raise MirrorUnavailableError(
            f"localcloud's artifact mirror is not populated (nothing in {info.get('path')}): run {POPULATE}, "
            "then build again (a running localcloud serves it at once)"
        )
    if not info.get("reachable_from_vms") or not info.get("guest_url"):
        raise MirrorUnavailableError(
            "localcloud listens on an address its VMs cannot reach (QEMU maps their 10.0.2.2 to the host's "
            "127.0.0.1 only): serve it on 127.0.0.1 or 0.0.0.0"
        )
    deb_arch = {"x86": "amd64", "arm": "arm64"}[arch]
    if deb_arch not in info.get("architectures", []):
        raise MirrorUnavailableError(
            f"localcloud's artifact mirror serves {info.get('architectures')}, not {deb_arch}: build an x86 server type"
        )
    served: dict[str, list[str]] = info.get("versions") or {}
    wanted = versions.model_dump()
    clash = [
        f"{key} {wanted.get(key)!s} (the mirror has {' or '.join(served[key])})"
        for key in PINNED_KEYS
        if key in served and str(wanted.get(key, "")).lstrip("v") not in {s.lstrip("v") for s in served[key]}
    ]
    if clash:
        raise MirrorUnavailableError(
            "the var file asks for versions localcloud's artifact mirror does not serve: "
            + "; ".join(clash)
            + " — use config/vars/k8s-1.31-localcloud.json (or -debian12.json), which name what the mirror serves"
        )
    return LocalMirror(str(info["guest_url"]), served, tuple(info.get("standins", ())), info.get("registry_log"))
