"""The node recipe: which steps a build runs, in order.

The full image-builder recipe (setup, node, hcloud provider, containerd, kubernetes, registry
mirrors, custom scripts, sysprep, verify) is the provision issue's work. Until it lands this is
the minimal plan the builder needs to produce a clean, identifiable snapshot.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from .plan import Plan, Put, Run, Step
from .profiles import Profile
from .versions import Versions


@dataclass(frozen=True)
class RecipeContext:
    profile: Profile
    versions: Versions
    build_id: str
    tool_version: str
    build_time: dt.datetime


def provenance(ctx: RecipeContext) -> str:
    return (
        f"CAPI_IMAGE_VERSION={ctx.tool_version}\n"
        f"BUILD_ID={ctx.build_id}\n"
        f"BUILD_DATE={ctx.build_time.strftime('%Y-%m-%dT%H:%M:%SZ')}\n"
        f"KUBERNETES_VERSION={ctx.versions.kubernetes_semver}\n"
        f"OS={ctx.profile.os_label}\n"
    )


def build_plan(ctx: RecipeContext) -> Plan:
    return Plan(
        (
            Step(
                "provenance",
                "record what built this image",
                (Put("/etc/capi-image-release", provenance(ctx).encode()),),
            ),
            Step(
                "sysprep",
                "make the disk a template: no identity, no secrets, no free blocks",
                (
                    Run("cloud-init clean --logs --machine-id --seed"),
                    Run("rm -f /etc/ssh/ssh_host_*"),
                    Run("truncate -s 0 /root/.ssh/authorized_keys"),
                    Run("rm -rf /tmp/* /var/tmp/*"),
                    Run("fstrim --all || true"),
                    Run("sync"),
                ),
            ),
        )
    )
