"""Step 9, verify: image-builder's goss checks that apply to hcloud, plus its image-hygiene
checks, as read-only commands judged in Python. A failed check fails the build by name."""

from __future__ import annotations

import re

from ..options import RecipeContext
from ..plan import Check, Step
from .node import SYSCTLS

# goss checks these kernel params (not bbr, not inotify); rp_filter comes from "common".
CHECKED_SYSCTLS = (
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
    "net.ipv4.ip_forward",
    "net.ipv6.conf.all.forwarding",
    "net.ipv6.conf.all.disable_ipv6",
    "vm.overcommit_memory",
    "kernel.panic",
    "kernel.panic_on_oops",
    "net.ipv4.conf.all.rp_filter",
)
PREPULLED = "coredns,etcd,kube-apiserver,kube-controller-manager,kube-proxy,kube-scheduler,pause"


def prepulled_checks(prefix: str) -> list[Check]:
    """Each image kubeadm pre-pulled is listed by crictl — as goss checks it, name by name: an
    image a custom script adds is no failure."""
    listed = "crictl images -o json | jq -r '.images[].repoTags[]' | sed -E 's#.*/##; s#:.*##'"
    return [Check(f"{prefix}{name} pre-pulled", f"{listed} | grep -qx {name}") for name in PREPULLED.split(",")]


def _installed(pkg: str) -> Check:
    # sysprep holds every package, so "hold ok installed" is what an installed one looks like.
    return Check(
        f"package {pkg} installed", f"dpkg-query -W -f='${{Status}}' {pkg}", "regex", r"^(install|hold) ok installed$"
    )


def checks(ctx: RecipeContext) -> list[Check]:
    v, p = ctx.versions, ctx.profile
    out: list[Check] = [Check(f"kernel-param {k}", f"sysctl -n {k}", "equals", SYSCTLS[k]) for k in CHECKED_SYSCTLS]
    for svc in ("containerd", "auditd", p.chrony_service):
        out += [
            Check(f"service {svc} enabled", f"systemctl is-enabled {svc}", "regex", r"^(enabled|alias)$"),
            Check(f"service {svc} running", f"systemctl is-active {svc}", "equals", "active"),
        ]
    out += [
        Check("service kubelet enabled", "systemctl is-enabled kubelet", "equals", "enabled"),
        Check(
            "service kubelet not running",
            "systemctl is-active kubelet || true",
            "regex",
            r"^(inactive|failed|activating)$",
        ),
        Check(
            "service dockerd absent",
            "systemctl is-enabled docker 2>/dev/null || true",
            "regex",
            r"^(|disabled|masked|not-found)$",
        ),
    ]
    for timer in ("apt-daily.timer", "apt-daily-upgrade.timer"):
        out.append(
            Check(
                f"service {timer} not enabled",
                f"systemctl is-enabled {timer} || true",
                "regex",
                r"^(disabled|masked|)$",
            )
        )
    out.append(
        Check(
            "package ntp not installed",
            "dpkg-query -W -f='${Status}' ntp 2>/dev/null || true",
            "regex",
            r"^(|.*not-installed.*|deinstall.*)$",
        )
    )
    for pkg in p.debs(ctx.arch):
        out.append(_installed(pkg))
    if v.kubernetes_source_type == "pkg":
        deb = re.escape(v.kubernetes_deb_version)
        for b in ("kubelet", "kubeadm", "kubectl"):
            out.append(
                Check(
                    f"package {b} {v.kubernetes_deb_version}",
                    f"dpkg-query -W -f='${{Version}}' {b}",
                    "regex",
                    rf"^{deb}(-\d+(\.\d+)*)*$",
                )
            )
        out.append(_installed("kubernetes-cni"))
    else:
        sem = re.escape(v.kubernetes_semver)
        for b in ("kubectl version --client", "kubeadm version -o short", "kubelet --version"):
            out.append(Check(f"command {b.split()[0]} version", b, "regex", sem))
    out += [
        Check(
            "command containerd version", "containerd --version", "regex", re.escape(v.containerd_version.lstrip("v"))
        ),
        Check("command crictl ps", "crictl ps"),
        # The running daemon's effective config carries what config.toml set.
        Check(
            "command containerd uses the rendered config",
            # containerd 1.x prints "double", 2.x may print 'single' quotes: compare without them.
            'containerd config dump | grep -oE "SystemdCgroup = true|config_path = [\'\\"]/etc/containerd/certs.d" | tr -d "\'\\"" | sort -u',
            "lines",
            "SystemdCgroup = true,config_path = /etc/containerd/certs.d",
        ),
    ]
    if ctx.options.image_pull:
        out += prepulled_checks("command crictl images: ")
    # The cloud-init module itself, not the file written: the flag must be what cloud-init reads.
    out.append(
        Check(
            "cloud-init ERROR_ON_USER_DATA_FAILURE off",
            "python3 -c 'from cloudinit import features; print(features.ERROR_ON_USER_DATA_FAILURE)'",
            "equals",
            "False",
        )
    )
    if ctx.options.registry_mirror:
        for registry in ctx.options.registry_mirror.registries:
            out.append(Check(f"mirror {registry}", f"test -s /etc/containerd/certs.d/{registry}/hosts.toml"))
    out += [  # image hygiene (goss-image-hygiene.yaml)
        Check("hygiene no ssh host keys", "ls /etc/ssh/ssh_host_*_key 2>/dev/null || true", "empty"),
        Check("hygiene machine-id reset", "cat /etc/machine-id", "regex", r"^(|uninitialized)$"),
        Check("hygiene no cloud-init instance", "ls /var/lib/cloud/data/instance-id 2>/dev/null || true", "empty"),
        Check(
            "hygiene no core dumps",
            "find /var/crash /var/lib/systemd/coredump /var/tmp /tmp -type f -name 'core*' 2>/dev/null || true",
            "empty",
        ),
        Check("hygiene /var/log at most 200 MB", "du -sm /var/log | cut -f1", "at_most", "200"),
        Check("hygiene no authorized_keys", "ls /root/.ssh/authorized_keys 2>/dev/null || true", "empty"),
    ]
    return out


def verify(ctx: RecipeContext) -> Step:
    return Step("verify", "goss-equivalent and hygiene checks", tuple(checks(ctx)))
