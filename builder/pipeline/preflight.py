"""Preflight: everything that can be checked without spending money, and what it finds.

Token, catalog (server types, locations, deprecations), base image, versions, label rules, the
localcloud mirror, the rendered recipe, and that the new ``caph-image-name`` will not make
CAPH's lookup ambiguous. The answer is an ``ImageSpec``: the immutable description of the image
the rest of the build produces, plus where its server may run.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from hcloud import APIException
from hcloud.helpers.labels import LabelValidator
from hcloud.images import BoundImage
from hcloud.server_types import BoundServerType

from provision.options import RecipeContext
from provision.plan import Plan
from provision.versions import IMAGE_BUILDER_VERSION, Versions, VersionsError, load_versions

from .. import __version__, placement, provenance
from ..caph import CAPH_LABEL, caph_images
from ..cloud import Cloud
from ..config import ConfigError, ProjectConfig
from ..errors import InputError
from ..localmirror import LocalMirror, MirrorUnavailableError
from ..localmirror import lookup as lookup_local_mirror
from ..naming import image_name
from ..planning import recipe_context, render

# Go's time layout 2006-01-02T15-04-05Z, as image-builder's build_date / creationTimestamp labels.
UPSTREAM_TIME = "%Y-%m-%dT%H-%M-%SZ"


class PreflightError(InputError):
    """The build would fail or do harm; found before anything was created."""


@dataclass(frozen=True)
class ImageSpec:
    """The image a build makes: decided in preflight, read by every later phase."""

    name: str  # the caph-image-name value
    labels: MappingProxyType[str, str]  # the snapshot's labels before publishing (no caph-image-name)
    architecture: str  # x86 | arm
    base_image_id: int
    versions: Versions
    recipe: RecipeContext
    plan: Plan
    local_mirror: LocalMirror | None = None

    @property
    def published_labels(self) -> dict[str, str]:
        return {**self.labels, CAPH_LABEL: self.name}


@dataclass
class Found:
    """What preflight returns: the spec, and the placements a server may be created in (these
    change as creates meet no capacity, so they are not part of the spec)."""

    spec: ImageSpec
    placements: placement.Placements


def snapshot_labels(
    config: ProjectConfig, versions: Versions, *, base: dict[str, str], started: dt.datetime, arch: str
) -> dict[str, str]:
    p = config.profile
    return {
        **config.labels,
        **base,
        # image-builder's hcloud snapshot labels (packer/hcloud/packer.json) ...
        "build_date": started.strftime(UPSTREAM_TIME),
        "build_timestamp": str(int(started.timestamp())),
        "creationTimestamp": started.strftime(UPSTREAM_TIME),
        "distribution": p.distribution,
        "distribution_release": p.release,
        "distribution_version": p.version.replace(".", ""),  # 2404, as ubuntu-2404.json
        "image_builder_version": IMAGE_BUILDER_VERSION,  # the release the recipe follows
        "kubernetes_version": versions.kubernetes_semver,
        # ... and this tool's own
        "capi-image-version": __version__,
        "os": p.name,
        "arch": arch,
        "recipe": config.recipe,  # full, or minimal: kept apart by prune and refused by manifests
    }


def check_labels(labels: dict[str, str]) -> None:
    for key, value in labels.items():
        # Hetzner's label rules, as the pinned SDK states them
        ok, problem = LabelValidator.validate_verbose({key: value})
        if len(value) > 63 or len(key.rpartition("/")[2]) > 63:
            ok, problem = False, f"label {key} is longer than 63 characters (name or value)"
        if not ok:
            raise PreflightError(
                f"label {key}={value!r} is invalid: {problem} (keys: [prefix/]name, name and value at most "
                "63 characters, starting and ending alphanumeric, with [-_.a-zA-Z0-9] between)"
            )


class Preflight:
    def __init__(
        self, config: ProjectConfig, cloud: Cloud, *, endpoint: str, build_id: str, started: dt.datetime
    ) -> None:
        self.config = config
        self.cloud = cloud
        self.endpoint = endpoint
        self.build_id = build_id
        self.started = started

    def run(self, base_labels: dict[str, str]) -> Found:
        cfg = self.config
        try:
            versions = load_versions(cfg.versions_path())
        except VersionsError as e:
            raise PreflightError(str(e)) from e
        key = cfg.provenance_key_path()
        if key is not None:
            try:
                provenance.signer(key)
            except InputError as e:
                raise PreflightError(str(e)) from e
        types, placements = self._placements()
        primary = types[0]
        arch = "arm" if primary.architecture == "arm" else "x86"
        image = self._base_image(cfg.base_image, arch)
        name = image_name(
            cfg.image_name,
            versions=versions,
            profile=cfg.profile,
            arch=arch,
            started=self.started,
            build_id=self.build_id,
            project=cfg.name,
            recipe=cfg.recipe,
        )
        labels = snapshot_labels(cfg, versions, base=base_labels, started=self.started, arch=arch)
        check_labels({**labels, CAPH_LABEL: name})
        mirror = None
        if cfg.provision.uses_localcloud_mirror():
            try:
                mirror = lookup_local_mirror(self.endpoint, versions, arch)
            except MirrorUnavailableError as e:
                raise PreflightError(str(e)) from e
        try:
            ctx = recipe_context(
                cfg,
                versions,
                build_id=self.build_id,
                started=self.started,
                arch=arch,
                localcloud_mirror=mirror.guest_url if mirror else None,
            )
            plan = render(cfg, ctx)
        except ConfigError as e:
            raise PreflightError(str(e)) from e
        clash = caph_matches(self.cloud, name, arch)
        if clash:
            raise PreflightError(
                f"{CAPH_LABEL} '{name}' already matches image(s) {clash} for {arch}: "
                "CAPH would see the name as ambiguous; choose another image_name"
            )
        assert image.id is not None
        spec = ImageSpec(
            name=name,
            labels=MappingProxyType(labels),
            architecture=arch,
            base_image_id=image.id,
            versions=versions,
            recipe=ctx,
            plan=plan,
            local_mirror=mirror,
        )
        return Found(spec, placements)

    def _placements(self) -> tuple[list[BoundServerType], placement.Placements]:
        cfg = self.config
        types = []
        for name in [cfg.server_type, *cfg.fallback_server_types]:
            st = self._get("server type", functools.partial(self.cloud.client.server_types.get_by_name, name))
            if st is None:
                # one more request, on this path only: the names a user can choose from
                offered = self._get("server types", self.cloud.client.server_types.get_all)
                names = ", ".join(sorted(str(t.name) for t in offered if not t.deprecated))
                raise PreflightError(f"server type '{name}' does not exist; this project offers: {names}")
            assert isinstance(st, BoundServerType)
            types.append(st)
        primary = types[0]
        if cfg.architecture and cfg.architecture != primary.architecture:
            raise PreflightError(
                f"server type {cfg.server_type} is {primary.architecture}, the project asks for {cfg.architecture}"
            )
        offered = {entry.location.name for st in types for entry in (st.locations or []) if entry.location}
        for name in [cfg.location, *cfg.fallback_locations]:
            if name in offered:
                continue  # a server type offers it: it exists (one look-up fewer per build)
            loc = self._get("location", functools.partial(self.cloud.client.locations.get_by_name, name))
            if loc is None:
                known = ", ".join(
                    sorted(str(x.name) for x in self._get("locations", self.cloud.client.locations.get_all))
                )
                raise PreflightError(f"location '{name}' does not exist; locations: {known}")
        try:
            placements = placement.plan(
                types, [cfg.location, *cfg.fallback_locations], str(primary.architecture), now=dt.datetime.now(dt.UTC)
            )
        except placement.NoPlacementError as e:
            raise PreflightError(str(e)) from e
        return types, placements

    def _base_image(self, ref: str, arch: str) -> BoundImage:
        """A system image by name, or any image by ID (e.g. a snapshot to build on), as the
        hcloud API's own ``image`` parameter accepts both."""
        if not ref.isdigit():
            image = self._get("image", lambda: self.cloud.client.images.get_by_name_and_architecture(ref, arch))
            if image is None:
                raise PreflightError(f"image '{ref}' does not exist for architecture {arch}")
            return image  # type: ignore[no-any-return]

        def by_id() -> BoundImage | None:
            try:
                return self.cloud.client.images.get_by_id(int(ref))
            except APIException as e:
                if e.code == "not_found":
                    return None
                raise

        found = self._get("image", by_id)
        if found is None:
            raise PreflightError(f"image {ref} does not exist")
        assert isinstance(found, BoundImage)
        if found.architecture != arch:
            raise PreflightError(
                f"image {ref} is for {found.architecture}, server type {self.config.server_type} is {arch}"
            )
        if found.status != "available":
            raise PreflightError(f"image {ref} is {found.status}, not available")
        return found

    def _get(self, what: str, fn: Callable[[], Any]) -> Any:
        return self.cloud.call(f"look up {what}", fn)  # a refused token: CredentialsError, exit 2


def caph_matches(cloud: Cloud, name: str, arch: str, exclude: int | None = None, *, by_name: bool = True) -> list[int]:
    """Images CAPH would find for ``name``: label caph-image-name==name, plus name ``name``
    (only system images have names, so publish skips the name query preflight has done)."""

    def lookup() -> list[int]:
        found = caph_images(cloud.client, name, arch, by_name=by_name)
        return [i.id for i in found if i.id != exclude and i.id is not None]

    return cloud.call("check caph-image-name", lookup)


__all__ = ["UPSTREAM_TIME", "Found", "ImageSpec", "Preflight", "PreflightError", "caph_matches", "snapshot_labels"]
