"""What a recipe is rendered from, beyond the OS profile and the versions: mirrors, scripts,
switches. Pydantic, because it comes from the project config."""

from __future__ import annotations

import base64
import datetime as dt
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .profiles import ARCHES, Profile
from .versions import Versions

# The value of ``artifacts.mirror`` / ``registry_mirror.url`` that means "the artifact mirror of
# the localcloud endpoint": the builder asks localcloud's admin API for it in preflight.
LOCALCLOUD = "localcloud"
# Where a mirror laid out like the upstream release URLs keeps each kind of download.
MIRROR_LAYOUT = {
    "containerd_url": "containerd",
    "runc_url": "runc",
    "cni_url": "cni",
    "crictl_url": "crictl",
    "kubernetes_http_source": "k8s",
    # pkgs.k8s.io's layout, one repository per Kubernetes minor ({series}: v1.31)
    "kubernetes_deb_repo": "pkgs/core:/stable:/{series}/deb/",
    "github_releases": "github",
}

# The six registries the seed's cri.sh mirrors through Harbor.
DEFAULT_REGISTRIES = ("docker.io", "gcr.io", "ghcr.io", "quay.io", "registry.k8s.io", "registry.gitlab.com")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Characters no base URL needs and a shell or an apt sources line would read as syntax.
_NOT_IN_URLS = set(" \t\n\r;|&`$<>\"'\\()")


def base_url(value: str | None, *, localcloud: bool = False) -> str | None:
    """An http(s) base URL with a host, or (where allowed) 'localcloud'; trailing / removed."""
    if value is None or (localcloud and value == LOCALCLOUD):
        return value
    bad = sorted(set(value) & _NOT_IN_URLS)
    if bad:
        raise ValueError(f"{value!r} is not a URL: it holds {' '.join(repr(c) for c in bad)}")
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        also = f", or '{LOCALCLOUD}'" if localcloud else ""
        raise ValueError(f"{value!r} must be an http(s) URL with a host{also}")
    return value.rstrip("/")


class Artifacts(Strict):
    """Base URLs for everything downloaded during the build (point them at a mirror when
    air-gapped); empty means the var file's value. Checksums pinned here win over the
    published checksum files."""

    mirror: str | None = Field(
        None,
        description=(
            "one base URL for every download, laid out as <mirror>/containerd, /runc, /cni, /crictl, /k8s, "
            "/pkgs/core:/stable:/{series}/deb/ (the apt repository), /github (an air-gapped mirror); 'localcloud': the artifact mirror the localcloud endpoint serves, "
            "asked for in preflight. A URL set below wins over the mirror."
        ),
    )
    containerd_url: str | None = Field(None, description="base URL of containerd release tarballs (default: GitHub)")
    runc_url: str | None = Field(None, description="base URL of runc release binaries (default: GitHub)")
    cni_url: str | None = Field(
        None, description="base URL of CNI plugin tarballs (default: the var file's kubernetes_cni_http_source)"
    )
    crictl_url: str | None = Field(None, description="base URL of crictl tarballs (default: the var file's)")
    kubernetes_http_source: str | None = Field(
        None, description="base URL of kubelet/kubeadm/kubectl for the http source type (default: the var file's)"
    )
    kubernetes_deb_repo: str = Field(
        "https://pkgs.k8s.io/core:/stable:/{series}/deb/",
        description="apt repository for the pkg source type ({series}: v1.31); a var file's own wins unless set here",
    )
    github_releases: str = Field("https://github.com", description="GitHub base for release downloads")
    sha256: dict[str, str] = Field(default_factory=dict, description="file name -> pinned sha256")

    @field_validator("mirror")
    @classmethod
    def _mirror_url(cls, v: str | None) -> str | None:
        return base_url(v, localcloud=True)

    @field_validator("containerd_url", "runc_url", "cni_url", "crictl_url", "kubernetes_http_source")
    @classmethod
    def _urls(cls, v: str | None) -> str | None:
        return base_url(v)

    @field_validator("kubernetes_deb_repo", "github_releases")
    @classmethod
    def _required_urls(cls, v: str) -> str:
        # kubernetes_deb_repo keeps its trailing / (apt's flat repository suite is "/")
        checked = base_url(v)
        assert checked is not None
        return v if v.endswith("/") and checked else checked

    def from_mirror(self, base: str) -> Artifacts:
        """Every URL not set explicitly taken from the mirror at ``base``."""
        unset = {k: f"{base.rstrip('/')}/{sub}" for k, sub in MIRROR_LAYOUT.items() if k not in self.model_fields_set}
        return self.model_copy(update={**unset, "mirror": base})


class RegistryMirror(Strict):
    """A Harbor proxy-cache in front of the public registries (the seed's cri.sh)."""

    url: str | None = Field(
        None,
        description=(
            "the proxy-cache base URL, e.g. https://harbor.example.com; 'localcloud': the registry of "
            "localcloud's artifact mirror, which answers as a Harbor proxy cache (/v2/proxy-<registry>/...)"
        ),
    )
    url_env: str | None = Field(None, description="or: the environment variable holding it (a CI secret)")
    project_pattern: str = Field("proxy-{registry}", description="Harbor project per upstream registry")
    registries: list[str] = Field(
        default_factory=lambda: list(DEFAULT_REGISTRIES), description="upstream registries mirrored (hosts.toml each)"
    )
    username_env: str | None = Field(None, description="environment variable with the pull user (pre-pull only)")
    password_env: str | None = Field(None, description="environment variable with its password (never logged)")
    bake_credentials: bool = Field(False, description="explicit opt-in: credentials end up in the image")

    @field_validator("url")
    @classmethod
    def _https(cls, v: str | None) -> str | None:
        return base_url(v, localcloud=True)

    @model_validator(mode="after")
    def _one_url(self) -> RegistryMirror:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give exactly one of url and url_env")
        return self

    def resolved(self, env: Mapping[str, str], *, placeholder: bool = False) -> RegistryMirror:
        """The mirror with ``url`` taken from ``url_env``; for plans, a visible placeholder."""
        if self.url is not None:
            return self
        value = env.get(self.url_env or "", "")
        if not value:
            if not placeholder:
                raise ValueError(f"registry_mirror.url_env: ${self.url_env} is not set")
            value = f"https://{self.url_env}.unset.invalid"
        return self.model_copy(update={"url": base_url(value), "url_env": None})


class RecipeOptions(Strict):
    apt_mirror: str | None = Field(
        None,
        description="the OS archive in the apt sources (Ubuntu: always written, default the var file's ubuntu_repo, "
        "as image-builder; Debian: rewritten only when set)",
    )
    apt_security_mirror: str | None = Field(
        None,
        description="security updates (Ubuntu: default apt_mirror, else ubuntu_security_repo; "
        "Debian: default Debian's security archive)",
    )
    dist_upgrade: bool = Field(True, description="apt-get dist-upgrade before installing, as image-builder")
    artifacts: Artifacts = Field(default_factory=Artifacts, description="where downloads come from (see below)")
    registry_mirror: RegistryMirror | None = Field(None, description="a Harbor proxy-cache for containerd")
    scripts: list[Path] = Field(
        default_factory=list, description="custom scripts run as root before sysprep, relative to config/"
    )
    scripts_outside_config: bool = Field(
        False, description="explicit opt-in: allow scripts outside the config directory (absolute paths)"
    )

    @field_validator("apt_mirror", "apt_security_mirror")
    @classmethod
    def _apt_urls(cls, v: str | None) -> str | None:
        return base_url(v)

    image_pull: bool = Field(True, description="pre-pull the Kubernetes images with kubeadm, as image-builder")

    def uses_localcloud_mirror(self) -> bool:
        return self.artifacts.mirror == LOCALCLOUD or (
            self.registry_mirror is not None and self.registry_mirror.url == LOCALCLOUD
        )

    def with_mirror(self, localcloud_mirror: str | None) -> RecipeOptions:
        """Mirror URLs resolved: ``artifacts.mirror`` spread over the single URLs, and
        ``localcloud`` replaced by the localcloud mirror's guest URL (a placeholder in plans)."""
        artifacts, registry = self.artifacts, self.registry_mirror
        if artifacts.mirror is not None:
            base = artifacts.mirror
            if base == LOCALCLOUD:
                if localcloud_mirror is None:
                    raise ValueError("provision.artifacts.mirror is 'localcloud' but no localcloud mirror is known")
                base = localcloud_mirror
            resolved = artifacts.from_mirror(base)
            # Still says "localcloud": the recipe leaves out checks its stand-in artifacts cannot pass.
            artifacts = (
                resolved.model_copy(update={"mirror": LOCALCLOUD}) if artifacts.mirror == LOCALCLOUD else resolved
            )
        if registry is not None and registry.url == LOCALCLOUD:
            if localcloud_mirror is None:
                raise ValueError("provision.registry_mirror.url is 'localcloud' but no localcloud mirror is known")
            registry = registry.model_copy(update={"url": f"{localcloud_mirror}/registry"})
        return self.model_copy(update={"artifacts": artifacts, "registry_mirror": registry})


@dataclass(frozen=True)
class Secrets:
    """Values that must never be logged: registry credentials when baking is opted in."""

    registry_username: str | None = None
    registry_password: str | None = None

    @property
    def basic_auth(self) -> str | None:
        """The HTTP Basic credentials as sent (base64 of user:password): a secret of its own."""
        if not (self.registry_username and self.registry_password):
            return None
        return base64.b64encode(f"{self.registry_username}:{self.registry_password}".encode()).decode()


@dataclass(frozen=True)
class RecipeContext:
    profile: Profile
    versions: Versions
    build_id: str
    tool_version: str
    build_time: dt.datetime
    arch: str = "x86"  # hcloud's name: x86 | arm
    options: RecipeOptions = field(default_factory=RecipeOptions)
    secrets: Secrets = field(default_factory=Secrets)
    script_sources: tuple[tuple[str, bytes], ...] = ()  # (name, content) of the custom scripts

    @property
    def deb_arch(self) -> str:
        return ARCHES[self.arch]
