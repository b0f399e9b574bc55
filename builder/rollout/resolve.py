"""The API check: the image name resolves under CAPH's rule, for each architecture used."""

from __future__ import annotations

from ..caph import CAPH_LABEL, caph_images
from ..cloud import Cloud
from .model import TEMPLATE_KIND, ManifestError
from .plan import Rollout


# ---------------------------------------------------------------------------- the API check
def check_resolution(cloud: Cloud, rollout: Rollout, *, allow_partial: bool = False) -> dict[str, int]:
    """Resolve the imageName under CAPH's rule for each server type the new templates use:
    exactly one image of that type's architecture, available, and (if the build said so) the
    snapshot the build published. Returns the image id per server type."""
    client = cloud.client
    resolved: dict[str, int] = {}
    name = rollout.image.name
    concrete = sorted(t for t in rollout.server_types() if "${" not in t)
    variables = sorted(t for t in rollout.server_types() if "${" in t)
    targets: list[tuple[str, str]] = []  # (what, architecture)
    for stype in concrete:
        st = cloud.call(f"look up server type {stype}", lambda s=stype: client.server_types.get_by_name(s))  # type: ignore[misc]
        if st is None:
            raise ManifestError(_unknown_type(cloud, rollout, stype))
        targets.append((f"server type {stype}", str(st.architecture)))
    if not concrete and not variables:
        arches = [rollout.image.architecture] if rollout.image.architecture else ["x86", "arm"]
        # no server type known (a topology cluster without machine type variables)
        targets += [("the image's architecture", a) for a in arches]
        variables = ["the image's architecture"]  # resolved if any one architecture resolves
    elif variables:
        # A clusterctl template: the type is filled in later, so its architecture is unknown.
        arches = [rollout.image.architecture] if rollout.image.architecture else ["x86", "arm"]
        rollout.notes.append(
            f"server type {', '.join(variables)} is a clusterctl variable: the architecture check is skipped "
            f"(checked for {' and '.join(a for a in arches if a)}); pass --server-type to check one"
        )
        targets += [(v, a) for v in variables for a in arches if a]
    for what, arch in targets:
        found = cloud.call(f"resolve imageName {name}", lambda a=arch: caph_images(client, name, a))  # type: ignore[misc]
        if not found:
            if what in variables and any(t[0] == what and t[1] != arch for t in targets):
                continue  # another architecture of the same variable may resolve
            raise ManifestError(
                f"imageName '{name}' resolves to no image for {arch} ({what}): CAPH would report "
                f"ImageNotFound. Is the snapshot published (label {CAPH_LABEL}) in this project?"
            )
        if len(found) > 1:
            ids = ", ".join(f"{i.id} ({i.type})" for i in found)
            raise ManifestError(
                f"imageName '{name}' is ambiguous for {arch} ({what}): images {ids} match "
                f"(label {CAPH_LABEL}=={name} or name {name}); CAPH would report ImageAmbiguous and create no machine"
            )
        stype = what.removeprefix("server type ")
        image = found[0]
        recipe = (image.labels or {}).get("recipe", "full")
        if recipe != "full" and not allow_partial:
            raise ManifestError(
                f"image {image.id} ('{name}') was built with --recipe {recipe} (the lifecycle only, no Kubernetes): "
                "not a node image; roll out an image of the full recipe (--allow-partial-recipe to test a rollout)"
            )
        if image.status != "available":
            raise ManifestError(f"image {image.id} for imageName '{name}' is {image.status}, not available yet")
        if rollout.image.snapshot_id is not None and image.id != rollout.image.snapshot_id:
            raise ManifestError(
                f"imageName '{name}' resolves to image {image.id}, but the build published snapshot "
                f"{rollout.image.snapshot_id}"
            )
        assert image.id is not None
        resolved[stype] = image.id
    for v in variables:
        if v not in resolved:
            raise ManifestError(
                f"imageName '{name}' resolves to no image for any architecture: CAPH would report ImageNotFound. "
                f"Is the snapshot published (label {CAPH_LABEL}) in this project?"
            )
    return resolved


def _unknown_type(cloud: Cloud, rollout: Rollout, stype: str) -> str:
    """Which template names the type, and the types the project offers (one more call, on
    this path only)."""
    named = [t.name for t in rollout.templates if t.server_type == stype]
    whose = f"{TEMPLATE_KIND} {', '.join(named)}" if named else "the templates in use"
    types = cloud.call("list server types", lambda: cloud.client.server_types.get_all())
    # Offered: not deprecated in at least one location (server_types[].locations[].deprecation,
    # Hetzner's current field; the type-wide ``deprecated`` is itself deprecated).
    offered = ", ".join(
        sorted(
            str(t.name)
            for t in types
            if not t.locations or any(getattr(e, "deprecation", None) is None for e in t.locations)
        )
    )
    return (
        f"server type '{stype}' (named by {whose}) does not exist in this project; "
        f"pass --server-type with one of: {offered}"
    )


def check_name_exists(cloud: Cloud, name: str) -> None:
    """``--image NAME``: some image of either architecture answers to it under CAPH's rule."""
    found = cloud.call(
        f"resolve imageName {name}",
        lambda: [*caph_images(cloud.client, name, "x86"), *caph_images(cloud.client, name, "arm")],
    )
    if not found:
        raise ManifestError(
            f"imageName '{name}' resolves to no image in this project (label {CAPH_LABEL}={name}, or a system image "
            "of that name): CAPH would report ImageNotFound; `capi-image images -p PROJECT` lists the published ones"
        )
