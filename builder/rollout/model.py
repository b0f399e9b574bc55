"""The image to roll out, names, and the constants of CAPH's and CAPI's shapes."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import InputError

TEMPLATE_KIND = "HCloudMachineTemplate"
INFRA_API_VERSION = "infrastructure.cluster.x-k8s.io/v1beta1"
Role = Literal["control-plane", "workers"]
ROLES: tuple[Role, ...] = ("control-plane", "workers")
# Where each kind keeps its infrastructureRef; v1beta2 KCP nests it one level deeper.
REF_PATHS: dict[str, tuple[tuple[str, ...], ...]] = {
    "KubeadmControlPlane": (
        ("spec", "machineTemplate", "infrastructureRef"),
        ("spec", "machineTemplate", "spec", "infrastructureRef"),
    ),
    "MachineDeployment": (("spec", "template", "spec", "infrastructureRef"),),
}
SEPARATOR = re.compile(r"^---(\s|$)")
PLAIN_END = re.compile(r"[\s,}\]#]")
DNS_BAD = re.compile(r"[^a-z0-9.-]+")


class ManifestError(InputError):
    """The manifests cannot be produced as asked; nothing was written."""


@dataclass(frozen=True)
class ImageRef:
    """The image to roll out: its caph-image-name value and what the build recorded about it."""

    name: str
    snapshot_id: int | None = None
    server_type: str | None = None
    architecture: str | None = None
    project: str | None = None


def image_from_build_manifest(path: Path) -> ImageRef:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ManifestError(f"cannot read build manifest {path}: {e}") from e
    if not isinstance(data, dict):
        raise ManifestError(f"{path} is not a capi-image build manifest")
    if data.get("result") != "success" or not data.get("caph_image_name"):
        raise ManifestError(
            f"{path} records no published image (result: {data.get('result')!r}, error: {data.get('error')!r})"
        )
    return ImageRef(
        name=str(data["caph_image_name"]),
        snapshot_id=data.get("snapshot_id"),
        server_type=data.get("server_type"),
        architecture=data.get("architecture"),
        project=data.get("project"),
    )


def dns_name(text: str) -> str:
    """A DNS-1123 subdomain fragment (what Kubernetes accepts as metadata.name): lower case,
    each dot-separated label starting and ending with a letter or digit (``k8s_.v1`` ->
    ``k8s.v1``, never ``k8s-.v1``), at most 63 characters per label."""
    labels = (label.strip("-")[:63].strip("-") for label in DNS_BAD.sub("-", text.lower()).split("."))
    return ".".join(label for label in labels if label)


def new_template_name(old_name: str, old_image: str | None, image: str) -> str:
    """``<old name without the previous image suffix>-<image>``: re-running a rollout does not
    pile up suffixes, and the name says which image the template boots."""
    base = old_name
    if old_image:
        suffix = "-" + dns_name(old_image)
        if base.endswith(suffix) and len(base) > len(suffix):
            base = base[: -len(suffix)]
    if "${" in base:  # a clusterctl template: the variable stays for clusterctl to fill in
        return f"{base}-{dns_name(image)}"
    return dns_name(f"{base}-{dns_name(image)}")[:253].rstrip("-.")
