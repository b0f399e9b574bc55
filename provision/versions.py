"""Versions from an image-builder var file, with image-builder's defaults for what it omits.

Every key is checked against what image-builder v0.1.48 knows (``varfile``): honoured,
ignored as upstream ignores it, or refused with the reason — never silently dropped. Defaults are those of image-builder v0.1.48, the release the seed repo runs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from . import varfile
from .textfile import TextFileError, read_text

# The image-builder release the recipe follows (and the snapshots' image_builder_version label).
IMAGE_BUILDER_VERSION = "v0.1.48"
UBUNTU_REPO = "http://us.archive.ubuntu.com/ubuntu"
UBUNTU_SECURITY_REPO = "http://security.ubuntu.com/ubuntu"

# image-builder v0.1.48 defaults (packer/config/*.json) for keys a var file usually omits.
IMAGE_BUILDER_DEFAULTS: dict[str, Any] = {
    "kubernetes_source_type": "pkg",
    "kubernetes_cni_source_type": "pkg",
    "kubernetes_cni_semver": "v1.2.0",
    "kubernetes_container_registry": "registry.k8s.io",
    "kubernetes_http_source": "https://dl.k8s.io/release",
    "kubernetes_cni_http_source": "https://github.com/containernetworking/plugins/releases/download",
    "crictl_version": "1.32.0",
    # packer/config/kubernetes.json says pkg, yet v0.1.48's kubernetes role downloads crictl from
    # crictl_url whatever it says; so does the kubernetes step.
    "crictl_source_type": "pkg",
    "crictl_url": "https://github.com/kubernetes-sigs/cri-tools/releases/download",
    "containerd_version": "1.7.29",
    "containerd_url": "https://github.com/containerd/containerd/releases/download",
    "runc_version": "1.2.8",
    "runc_url": "https://github.com/opencontainers/runc/releases/download",
    "pause_image": "registry.k8s.io/pause:3.10",
    "containerd_cri_socket": "/var/run/containerd/containerd.sock",
    "ubuntu_repo": UBUNTU_REPO,
    "ubuntu_security_repo": UBUNTU_SECURITY_REPO,
    "extra_debs": "",
    "kubelet_extra_args": "",
}

_SEMVER = re.compile(r"^v\d+\.\d+\.\d+$")


class Versions(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    kubernetes_semver: str
    kubernetes_series: str
    kubernetes_deb_version: str
    kubernetes_rpm_version: str | None = None
    kubernetes_source_type: str
    kubernetes_cni_semver: str
    kubernetes_cni_source_type: str
    kubernetes_cni_deb_version: str | None = None
    kubernetes_container_registry: str
    kubernetes_http_source: str
    kubernetes_cni_http_source: str
    crictl_version: str
    crictl_source_type: str
    crictl_url: str
    containerd_version: str
    containerd_url: str
    runc_version: str
    runc_url: str
    pause_image: str
    containerd_cri_socket: str
    kubernetes_deb_repo: str | None = None  # image-builder's default: pkgs.k8s.io for the series
    kubernetes_deb_gpg_key: str | None = None
    extra_debs: str = ""  # space-separated, installed with the common packages
    kubelet_extra_args: str = ""

    @field_validator("kubernetes_semver")
    @classmethod
    def _semver(cls, v: str) -> str:
        if not _SEMVER.match(v):
            raise ValueError(f"'{v}' is not a version like v1.31.4")
        return v

    @property
    def kubernetes_minor(self) -> str:
        return ".".join(self.kubernetes_semver.split(".")[:2])


class VersionsError(ValueError):
    pass


def load_versions(path: Path) -> Versions:
    try:
        raw = json.loads(read_text(path, f"versions var file {path}"))
    except TextFileError as e:
        raise VersionsError(str(e)) from e
    except FileNotFoundError as e:
        raise VersionsError(f"versions var file {path} does not exist") from e
    except IsADirectoryError as e:
        raise VersionsError(f"versions var file {path} is a directory; name a JSON file in it") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise VersionsError(f"versions var file {path} is not JSON: {e}") from e
    except RecursionError as e:
        raise VersionsError(f"versions var file {path} is nested too deeply to be a var file") from e
    except OSError as e:
        raise VersionsError(f"versions var file {path} cannot be read: {e.strerror}") from e
    if not isinstance(raw, dict):
        raise VersionsError(f"versions var file {path} must hold a JSON object")
    refused = varfile.problems(raw)
    if refused:
        raise VersionsError(f"versions var file {path}: " + "; ".join(refused))
    try:
        return Versions.model_validate({**IMAGE_BUILDER_DEFAULTS, **raw})
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise VersionsError(f"versions var file {path}: {problems}") from e
