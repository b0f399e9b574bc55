"""Project configuration: ``config/projects/NAME.yaml``, validated before anything costs money."""

from __future__ import annotations

import os
import string
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from provision.options import RecipeOptions
from provision.profiles import PROFILES, Profile
from provision.recipe import RECIPES

from . import naming
from .errors import InputError

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_ENV = "CAPI_IMAGE_CONFIG_DIR"
_config_dir_option: Path | None = None  # --config-dir


def set_config_dir(path: Path | None) -> None:
    global _config_dir_option
    _config_dir_option = path


def config_dir() -> Path:
    """Where named projects live (``projects/NAME.yaml``) and their relative paths start:
    ``--config-dir``, else ``$CAPI_IMAGE_CONFIG_DIR``, else a checkout's ``config/`` (this
    repository), else ``./config`` (an installed wheel ships no projects: ``capi-image init``)."""
    if _config_dir_option is not None:
        return _config_dir_option
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    checkout = REPO_ROOT / "config"
    if (checkout / "projects").is_dir() and (REPO_ROOT / "pyproject.toml").is_file():
        return checkout
    return Path("config")


IMAGE_NAME_FIELDS = naming.FIELDS
# Labels the build sets on what it creates: a project may not set them (a caph-image-name on a
# snapshot still being created could be picked up by CAPH; created-by/build-id are how cleanup
# and gc find things).
DAY = 86400.0  # the longest deadline any wait may have
RESERVED_LABELS = frozenset(
    {
        "caph-image-name", "created-by", "build-id", "role", "capi-image-version", "os", "arch", "build_date",
        "build_timestamp", "creationTimestamp", "distribution", "distribution_release", "distribution_version",
        "image_builder_version", "kubernetes_version", "recipe", "sbom-sha256", "sbom-content",
    }
)  # fmt: skip
DEFAULT_IMAGE_NAME = "cluster-api-{build_name}-{kubernetes_semver}-{build_timestamp}"


class ConfigError(InputError):
    """Bad input: a clear message, raised before any API call."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LocalCloudConfig(Strict):
    """The embedded localcloud started for this project (``endpoint: localcloud``)."""

    backend: Literal["qemu", "stub"] = Field(
        "qemu", description="qemu: real VMs (TCG); stub: an SSH server that answers every command (lifecycle only)"
    )
    state_dir: Path = Field(
        Path(".state/localcloud"), description="disks, consoles and state of the embedded localcloud"
    )
    action_times: dict[str, float] = Field(
        default_factory=dict, description="modelled seconds per action (create_server, create_image, …)"
    )


class Timeouts(Strict):
    """Deadlines in seconds."""

    # Bounded: a deadline of 1e308 or .inf is a typo, and would overflow the clock arithmetic.
    api_action: float = Field(600, gt=0, le=DAY, description="create/start/delete server actions")
    ssh: float = Field(600, gt=0, le=DAY, description="until SSH answers after the server runs")
    cloud_init: float = Field(900, gt=0, le=DAY, description="cloud-init status --wait")
    shutdown: float = Field(180, gt=0, le=DAY, description="ACPI shutdown until off, before poweroff")
    snapshot: float = Field(3600, gt=0, le=DAY, description="create_image until available")
    step: float = Field(3600, gt=0, le=DAY, description="one provision step")
    settle: float = Field(
        5, ge=0, le=120, description="after an interrupt during a create, wait this long before cleanup looks for it"
    )


class Retry(Strict):
    """Retries of transient API errors (rate limit, 5xx, conflict, locked, dropped connection)."""

    attempts: int = Field(8, ge=1, le=100, description="tries per API call, the first included")
    initial_wait: float = Field(1.0, gt=0, le=600, description="seconds before the first retry (exponential, jittered)")
    max_wait: float = Field(30.0, gt=0, le=3600, description="longest wait between retries")


class Polling(Strict):
    """How often to look at something that is not done yet (actions use their progress)."""

    initial: float = Field(0.5, gt=0, le=60, description="first delay, growing up to a cap")


class Retention(Strict):
    """What ``capi-image prune`` keeps."""

    keep: int = Field(3, ge=1, le=1000, description="newest published snapshots kept per family (OS, arch, k8s minor)")


class Matrix(Strict):
    """Several images from one project: every combination of these, built concurrently
    (``capi-image build --matrix``). An empty list means the project's own value."""

    versions: list[Path] = Field(default_factory=list, description="image-builder var files (Kubernetes versions)")
    os: list[str] = Field(default_factory=list, description="OS profiles")
    architecture: list[Literal["x86", "arm"]] = Field(default_factory=list, description="architectures")
    server_types: dict[Literal["x86", "arm"], str] = Field(
        default_factory=dict, description="build server type per architecture (default: server_type)"
    )
    parallel: int = Field(2, ge=1, le=16, description="builds at the same time")

    @field_validator("os")
    @classmethod
    def _profiles(cls, v: list[str]) -> list[str]:
        unknown = [o for o in v if o not in PROFILES]
        if unknown:
            raise ValueError(f"unknown OS profile(s) {unknown}; known: {', '.join(PROFILES)}")
        return v


class ApiBudget(Strict):
    """The project's API request budget (Hetzner: 3600/hour, +1/s), shared by all builds of a
    process; ``reserve`` is left to everyone else in the project (CAPH, other jobs)."""

    limit: int = Field(3600, ge=1, le=1_000_000, description="requests the bucket holds (Hetzner: 3600 per project)")
    per_second: float = Field(1.0, gt=0, le=1000, description="refill rate (Hetzner: one request per second)")
    reserve: int = Field(
        300, ge=0, le=1_000_000, description="requests never used by builds: left to CAPH and other jobs"
    )

    @model_validator(mode="after")
    def _room(self) -> ApiBudget:
        if self.reserve >= self.limit:
            raise ValueError(f"reserve {self.reserve} must be below limit {self.limit}")
        return self


class ProjectConfig(Strict):
    _root: Path | None = PrivateAttr(None)
    _ref: str | None = PrivateAttr(None)  # what -p was given: a name or a path
    name: str = Field(
        description="the project name: manifests, logs, hints (default: the project file's name)",
        json_schema_extra={"default_doc": "the file name"},
    )
    endpoint: str | None = Field(
        None, description="API base URL; 'localcloud' starts the embedded one; default: Hetzner (or HCLOUD_ENDPOINT)"
    )
    localcloud: LocalCloudConfig = Field(
        default_factory=LocalCloudConfig, description="the embedded localcloud (endpoint: localcloud)"
    )
    token_env: str = Field("HCLOUD_TOKEN", description="environment variable holding the API token")
    location: str = Field(description="where the build server runs, e.g. fsn1")
    server_type: str = Field(description="the build server's type, e.g. cpx22 (x86) or cax21 (arm)")
    fallback_locations: list[str] = Field(
        default_factory=list,
        description="locations to try in order when `location` has no capacity for the server type "
        "(resource_unavailable / placement_error); snapshots are project-wide, so a build may run anywhere",
    )
    fallback_server_types: list[str] = Field(
        default_factory=list,
        description="server types to try after `server_type` on the same errors (other architectures are skipped)",
    )
    architecture: Literal["x86", "arm"] | None = Field(
        None, description="checked against the server type's; default: the server type's"
    )
    os: str = Field(description="OS profile: " + ", ".join(PROFILES))
    image: str | None = Field(
        None,
        description="image to boot: a system image name, or an image ID (a snapshot to build on); default: the profile's",
    )
    versions: Path = Field(
        Path("vars/k8s-1.31.json"),
        description="image-builder var file (Kubernetes, containerd, … versions), relative to the config "
        "directory (a project file given by path: its folder)",
    )
    image_name: str = Field(
        DEFAULT_IMAGE_NAME,
        description="the caph-image-name value; fields: {build_name} {kubernetes_semver} {kubernetes_series} {build_timestamp} "
        "{os} {arch} {timestamp} {date} {build_id} {project}",
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="extra snapshot labels; prune only looks at images carrying them"
    )
    recipe: str = Field("full", description="full (image-builder's node recipe) or minimal (provenance + sysprep)")
    provision: RecipeOptions = Field(default_factory=RecipeOptions, description="recipe options (see below)")
    boot_test: bool = Field(True, description="boot the snapshot once before publishing it")
    timeouts: Timeouts = Field(default_factory=Timeouts, description="deadlines (see below)")
    retry: Retry = Field(default_factory=Retry, description="retries of transient API errors")
    polling: Polling = Field(default_factory=Polling, description="polling of what is not done yet")
    retention: Retention = Field(default_factory=Retention, description="what prune keeps")
    matrix: Matrix | None = Field(None, description="build --matrix: several images from this project")
    api_budget: ApiBudget = Field(default_factory=ApiBudget, description="the API request budget")
    provenance_key: Path | None = Field(
        None,
        description="PEM private key (ed25519, ECDSA or RSA, unencrypted) that signs each image's in-toto provenance; "
        "relative to the config directory; unsigned without",
    )

    def provenance_key_path(self) -> Path | None:
        key = self.provenance_key
        return None if key is None else key if key.is_absolute() else self.root / key

    @field_validator("os")
    @classmethod
    def _profile(cls, v: str) -> str:
        if v not in PROFILES:
            raise ValueError(f"unknown OS profile '{v}'; known: {', '.join(PROFILES)}")
        return v

    @field_validator("recipe")
    @classmethod
    def _recipe(cls, v: str) -> str:
        if v not in RECIPES:
            raise ValueError(f"unknown recipe '{v}'; known: {', '.join(RECIPES)}")
        return v

    @field_validator("image_name")
    @classmethod
    def _template(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("is empty: a template like 'k8s-{kubernetes_semver}-{os}-{arch}-{timestamp}'")
        try:
            parts = list(string.Formatter().parse(v))
        except ValueError as e:
            raise ValueError(f"'{v}' is not a valid template ({e}); write placeholders as {{name}}") from e
        for _, field, spec, conversion in parts:
            if field is None:
                continue
            # Only plain {name}: a conversion (!r), a format spec (:>999999999) or an attribute
            # ({os.__class__}) could explode or leak; none is needed for a label value.
            if conversion is not None or spec:
                raise ValueError(
                    f"placeholder {{{field}}} with a conversion or format spec is not allowed; use {{name}}"
                )
            if field not in IMAGE_NAME_FIELDS:
                raise ValueError(
                    f"unknown placeholder(s) {[field] if field else ['{}']}; known: {sorted(IMAGE_NAME_FIELDS)}"
                )
        return v

    @field_validator("labels")
    @classmethod
    def _own_labels(cls, v: dict[str, str]) -> dict[str, str]:
        reserved = sorted(set(v) & RESERVED_LABELS)
        if reserved:
            raise ValueError(
                f"label(s) {reserved} are set by capi-image itself (caph-image-name only once the snapshot is "
                "published); choose other keys"
            )
        return v

    @field_validator("token_env")
    @classmethod
    def _env_name(cls, v: str) -> str:
        if not v.replace("_", "").isalnum():
            raise ValueError(f"'{v}' is not an environment variable name")
        return v

    @model_validator(mode="after")
    def _endpoint(self) -> ProjectConfig:
        if self.endpoint not in (None, "localcloud") and not self.endpoint.startswith(("http://", "https://")):
            raise ValueError(f"endpoint '{self.endpoint}' must be an http(s) URL or 'localcloud'")
        return self

    @property
    def profile(self) -> Profile:
        return PROFILES[self.os]

    @property
    def base_image(self) -> str:
        return self.image or self.profile.hcloud_image

    @property
    def ref(self) -> str:
        """What ``-p`` takes to load this project again (in hints: ``capi-image gc -p …``)."""
        return self._ref or self.name

    def gc_command(self, build_id: str | None = None) -> str:
        """The command that deletes what a build of this project left."""
        scope = f" --build-id {build_id} --older-than 0s" if build_id else ""
        return f"capi-image gc --project {self.ref}{scope}"

    @property
    def root(self) -> Path:
        """Where the project's relative paths (versions, scripts) start: the config directory
        for a named project, the folder a project file was given from (see ``load_project``)."""
        return self._root if self._root is not None else config_dir()

    def versions_path(self) -> Path:
        return self.versions if self.versions.is_absolute() else self.root / self.versions

    def script_paths(self) -> list[Path]:
        return [p if p.is_absolute() else self.root / p for p in self.provision.scripts]
