"""Step 2, node (image-builder's node role): kernel modules, sysctls, swap, auditd, etcd
network tuning, provenance."""

from __future__ import annotations

from ..options import RecipeContext
from ..plan import Put, Run, Step
from .common import enable

MODULES = ("overlay", "br_netfilter")
SYSCTLS: dict[str, str] = {
    "net.bridge.bridge-nf-call-iptables": "1",
    "net.bridge.bridge-nf-call-ip6tables": "1",
    "net.ipv4.ip_forward": "1",
    "net.ipv6.conf.all.forwarding": "1",
    "net.ipv6.conf.all.disable_ipv6": "0",
    "net.ipv4.tcp_congestion_control": "bbr",
    "vm.overcommit_memory": "1",
    "kernel.panic": "10",
    "kernel.panic_on_oops": "1",
    "fs.inotify.max_user_instances": "8192",
    "fs.inotify.max_user_watches": "524288",
    # image-builder sets rp_filter on Ubuntu only; we set it on every profile.
    "net.ipv4.conf.all.rp_filter": "1",
}
BEGIN, END = "# BEGIN capi-image kubernetes", "# END capi-image kubernetes"

ETCD_UDEV = (
    'ACTION=="add", SUBSYSTEM=="net", SUBSYSTEMS=="pci|xen|vmbus" RUN+="/usr/local/bin/etcd-network-tuning.sh $name"\n'
)
ETCD_SCRIPT = """#!/bin/bash
# Run by udev for each new network interface: etcd's peer (2380) traffic gets the first band
# and client (2379) traffic the second. Every outcome goes to the journal (tag etcd-tuning).
set -o errexit -o nounset -o pipefail
log() { echo "$2" | systemd-cat -p "$1" -t etcd-tuning; }
if [ "$#" -ne 1 ]; then
  log emerg "usage: $0 <interface>"
  exit 1
fi
DEV=$1
trap 'log emerg "etcd network tuning failed for interface ${DEV}"' ERR
log info "etcd network tuning for interface ${DEV}"
tc qdisc add dev "${DEV}" root handle 1: prio bands 3
tc filter add dev "${DEV}" parent 1: protocol ip prio 1 u32 match ip sport 2380 0xffff flowid 1:1
tc filter add dev "${DEV}" parent 1: protocol ip prio 1 u32 match ip dport 2380 0xffff flowid 1:1
tc filter add dev "${DEV}" parent 1: protocol ip prio 2 u32 match ip sport 2379 0xffff flowid 1:1
tc filter add dev "${DEV}" parent 1: protocol ip prio 2 u32 match ip dport 2379 0xffff flowid 1:1
"""


def sysctl_block() -> str:
    return "\n".join([BEGIN, *(f"{k} = {v}" for k, v in SYSCTLS.items()), END]) + "\n"


def provenance(ctx: RecipeContext) -> str:
    return (
        f"CAPI_IMAGE_VERSION={ctx.tool_version}\n"
        f"BUILD_ID={ctx.build_id}\n"
        f"BUILD_DATE={ctx.build_time.strftime('%Y-%m-%dT%H:%M:%SZ')}\n"
        f"KUBERNETES_VERSION={ctx.versions.kubernetes_semver}\n"
        f"OS={ctx.profile.os_label}\n"
        f"ARCH={ctx.deb_arch}\n"
    )


def node(ctx: RecipeContext) -> Step:
    f = ctx.profile.sysctl_file
    return Step(
        "node",
        "kernel modules, sysctls, swap off, auditd, etcd tuning, provenance",
        (
            Run("modprobe overlay && modprobe br_netfilter"),
            Put("/etc/modules-load.d/kubernetes.conf", ("\n".join(MODULES) + "\n").encode()),
            Put("/tmp/capi-image-sysctl", sysctl_block().encode()),
            # A managed block: re-running replaces it instead of appending a second one.
            Run(
                f"touch {f} && sed -i '/^{BEGIN}$/,/^{END}$/d' {f} && cat /tmp/capi-image-sysctl >> {f} "
                f"&& rm /tmp/capi-image-sysctl && sysctl -p {f}"
            ),
            Run(
                r"if swapon --show --noheadings | grep -q .; then swapoff -a; sed -ri '/\sswap\s/s/^#?/#/' /etc/fstab; fi"
            ),
            enable("auditd", now=True),
            Put("/etc/udev/rules.d/90-etcd-tuning.rules", ETCD_UDEV.encode()),
            Put("/usr/local/bin/etcd-network-tuning.sh", ETCD_SCRIPT.encode(), 0o755),
            Put("/etc/capi-image-release", provenance(ctx).encode()),
        ),
    )
