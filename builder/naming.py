"""The snapshot's ``caph-image-name``: the one place its template fields are filled.

image-builder's hcloud name (packer/hcloud/hcloud-config.json) is the default template:
``build_name`` is the OS profile (ubuntu-2404), ``build_timestamp`` UNIX seconds. CAPH filters
by architecture, so one name may serve x86 and arm images. The preflight names the image with
it; the matrix names every variant with it (fixed time and build id) to find variants whose names
could only differ by those.
"""

from __future__ import annotations

import datetime as dt

from provision.profiles import Profile
from provision.versions import Versions


def name_fields(
    *, versions: Versions, profile: Profile, arch: str, started: dt.datetime, build_id: str, project: str
) -> dict[str, str]:
    """Every placeholder an ``image_name`` template may use, with its value for one build."""
    return {
        "kubernetes_semver": versions.kubernetes_semver,
        "kubernetes_series": versions.kubernetes_series,
        "os": profile.os_label,
        "arch": arch,
        "timestamp": started.strftime("%Y%m%d-%H%M%S"),
        "date": started.strftime("%Y%m%d"),
        "build_id": build_id,
        "project": project,
        "build_name": profile.name,
        "build_timestamp": str(int(started.timestamp())),
    }


def image_name(
    template: str,
    *,
    versions: Versions,
    profile: Profile,
    arch: str,
    started: dt.datetime,
    build_id: str,
    project: str,
    recipe: str = "full",
) -> str:
    """``template`` filled with the fields of one build; an image of a partial recipe (no
    Kubernetes: ``minimal``) says so at the end of its name, so it never joins a production
    name's family (CAPH would boot it, prune would count it)."""
    fields = name_fields(
        versions=versions, profile=profile, arch=arch, started=started, build_id=build_id, project=project
    )
    name = template.format(**fields)
    return name if recipe == "full" else f"{name}-{recipe}"


# The placeholders a template may name (config validates templates against them); a test holds
# them equal to what name_fields fills.
FIELDS = frozenset(
    {
        "kubernetes_semver", "kubernetes_series", "os", "arch", "timestamp", "date", "build_id", "project",
        "build_name", "build_timestamp",
    }
)  # fmt: skip
