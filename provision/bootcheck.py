"""The boot test's checks: a server booted from the new snapshot must be a new machine — new
cloud-init instance, new host key, new machine-id — with the node services in their resting
state (containerd running, kubelet enabled but waiting for kubeadm) and the mirrors in place."""

from __future__ import annotations

from .options import RecipeContext
from .plan import Check


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
    ]
    if recipe == "full":
        out += [
            Check("boot containerd active", "systemctl is-active containerd", "equals", "active"),
            Check("boot kubelet enabled", "systemctl is-enabled kubelet", "equals", "enabled"),
            Check(
                "boot kubelet not running",
                "systemctl is-active kubelet || true",
                "regex",
                r"^(inactive|failed|activating)$",
            ),
        ]
        if ctx.options.registry_mirror:
            for registry in ctx.options.registry_mirror.registries:
                out.append(Check(f"boot mirror {registry}", f"test -s /etc/containerd/certs.d/{registry}/hosts.toml"))
    return out
