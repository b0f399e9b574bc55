"""The boot test's checks: a server booted from the new snapshot must be a new machine — new
cloud-init instance, new host key, new machine-id — with the node services in their resting
state (containerd running, kubelet enabled but waiting for kubeadm) and the mirrors in place."""

from __future__ import annotations

import shlex

from .options import RecipeContext
from .plan import Check
from .steps import buildtime
from .steps.containerd import major
from .steps.verify import PREPULLED

# The first state that is not "active" within 15 s (RestartSec is 10), else "active".
KUBELET_AT_REST = (
    "for _ in $(seq 15); do s=$(systemctl is-active kubelet || true); "
    '[ "$s" = active ] || { echo "$s"; exit 0; }; sleep 1; done; echo active'
)


def boot_checks(
    ctx: RecipeContext, recipe: str, *, build_machine_id: str, build_instance_id: str, host_key_blob: str
) -> list[Check]:
    out = [
        Check(
            "boot cloud-init ran as a new instance", "cat /var/lib/cloud/data/instance-id", "differs", build_instance_id
        ),
        Check("boot new machine-id", "cat /etc/machine-id", "differs", build_machine_id),
        Check("boot machine-id is real", "cat /etc/machine-id", "regex", r"^[0-9a-f]{32}$"),
        # The key injected for this boot, not the build server's: cloud-init set up this instance.
        Check("boot new SSH host key", "cut -d' ' -f2 /etc/ssh/ssh_host_ed25519_key.pub", "equals", host_key_blob),
        # A network wait-online unit that timed out means every node boots minutes late (the
        # first-boot preset trap, see sysprep.reset_cloud_init).
        Check(
            "boot no wait-online failure",
            "systemctl list-units --state=failed --no-legend --plain '*wait-online*'",
            "empty",
        ),
    ]
    if recipe == "full":
        out += [
            *buildtime.gone_checks("boot "),
            Check("boot containerd active", "systemctl is-active containerd", "equals", "active"),
            Check("boot kubelet enabled", "systemctl is-enabled kubelet", "equals", "enabled"),
            # Without kubeadm's config kubelet crash-loops (RestartSec=10): "active" for the
            # moment each try takes to fail, "activating" between tries. One look can land in
            # that moment (it did, on a TCG VM); a kubelet that stays active for a whole
            # restart period is really running.
            Check(
                "boot kubelet not running",
                KUBELET_AT_REST,
                "regex",
                r"^(inactive|failed|activating)$",
            ),
        ]
        if ctx.versions.kubernetes_source_type == "pkg":
            # The debs as the image holds them: installed at the var file's version, held.
            out += [
                Check(
                    f"boot {b} held at {ctx.versions.kubernetes_deb_version}",
                    f"dpkg-query -W -f='${{Status}} ${{Version}}' {b}",
                    "equals",
                    f"hold ok installed {ctx.versions.kubernetes_deb_version}",
                )
                for b in ("kubelet", "kubeadm", "kubectl")
            ]
        if major(ctx.versions.containerd_version) >= 2:
            out.append(Check("boot containerd config version 3", "containerd config dump | grep -x 'version = 3'"))
        if ctx.options.image_pull:
            # Each pre-pulled image is still there (a custom script may add more: not an error).
            listed = "crictl images -o json | jq -r '.images[].repoTags[]' | sed -E 's#.*/##; s#:.*##'"
            out += [
                Check(f"boot image {name} pre-pulled", f"{listed} | grep -qx {name}") for name in PREPULLED.split(",")
            ]
        mirror = ctx.options.registry_mirror
        if mirror:
            for registry in mirror.registries:
                path = f"/etc/containerd/certs.d/{registry}/hosts.toml"
                section = f'[host."{mirror.url}/v2/{mirror.project_pattern.format(registry=registry)}"]'
                out.append(Check(f"boot mirror {registry}", f"grep -qxF {shlex.quote(section)} {path}"))
    return out
