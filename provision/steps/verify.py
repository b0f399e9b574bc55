"""Step 9, verify: image-builder's goss checks that apply to hcloud, plus its image-hygiene
checks, as read-only commands judged in Python. A failed check fails the build by name."""

from __future__ import annotations

import re

from ..options import LOCALCLOUD, RecipeContext
from ..plan import Check, Step
from ..profiles import COMMON_DEBS, NETWORK_CONFIG_FILES
from . import buildtime
from .containerd import major
from .kubernetes import KEYRING, SOURCES
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


def _service(name: str, enabled: bool, running: bool) -> list[Check]:
    """goss's ``service: {enabled, running}`` as two checks (each failure names which)."""
    if enabled:
        en = Check(f"service {name} enabled", f"systemctl is-enabled {name}", "regex", r"^(enabled|alias)$")
    else:
        # goss: not enabled; a unit that does not exist is not enabled either.
        en = Check(
            f"service {name} not enabled",
            f"systemctl is-enabled {name} 2>/dev/null || true",
            "regex",
            r"^(|disabled|masked|not-found|static)$",
        )
    if running:
        run = Check(f"service {name} running", f"systemctl is-active {name}", "equals", "active")
    else:
        run = Check(
            f"service {name} not running",
            f"systemctl is-active {name} 2>/dev/null || true",
            "regex",
            r"^(|inactive|failed|activating|unknown)$",
        )
    return [en, run]


def _nofile_check(containerd_version: str) -> Check:
    """containerd's open-files limit as its own unit for that major sets it: 1.x raises it to
    infinity, 2.x leaves systemd's default (containers inherit it)."""
    if major(containerd_version) < 2:
        return Check(
            "containerd open-files limit infinity",
            "systemctl show -p LimitNOFILE --value containerd",
            "equals",
            "infinity",
        )
    return Check(
        "containerd open-files limit systemd's default",
        '[ "$(systemctl show -p LimitNOFILE --value containerd)" = "$(systemctl show -p DefaultLimitNOFILE --value)" ]',
    )


def goss_packages(ctx: RecipeContext) -> list[str]:
    """The packages goss checks for this OS on hcloud: ``common_debs`` plus the hcloud
    provider list (goss-vars.yaml ``ubuntu.hcloud.package``; not the virt debs, which the setup
    role installs but goss checks only for other providers)."""
    p = ctx.profile
    return [*COMMON_DEBS, *(d for d in p.provider_debs if d != "cloud-init")]


def checks(ctx: RecipeContext) -> list[Check]:
    """goss's hcloud spec for this OS (goss-kernel-params/-service/-package/-command.yaml with
    goss-vars.yaml), then what this tool adds: the cloud-init flag, mirrors, image hygiene."""
    v, p = ctx.versions, ctx.profile
    out: list[Check] = [Check(f"kernel-param {k}", f"sysctl -n {k}", "equals", SYSCTLS[k]) for k in CHECKED_SYSCTLS]
    out += _service("containerd", True, True)
    out += _service("dockerd", False, False)
    out += _service("kubelet", True, False)
    out += _service("conntrackd", False, False)
    out += _service("auditd", True, True)
    out += _service(p.chrony_service, True, True)  # goss says chronyd: an alias of chrony on Debian/Ubuntu
    for timer in ("apt-daily.timer", "apt-daily-upgrade.timer"):
        out += _service(timer, False, False)
    out.append(
        Check(
            "package ntp not installed",
            "dpkg-query -W -f='${Status}' ntp 2>/dev/null || true",
            "regex",
            r"^(|.*not-installed.*|deinstall.*)$",
        )
    )
    for pkg in goss_packages(ctx):
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
            # Held, so an unattended upgrade cannot move a node off the image's Kubernetes.
            out.append(Check(f"package {b} held", f"dpkg-query -W -f='${{Status}}' {b}", "equals", "hold ok installed"))
        # From a signed repository: the source names the key it trusts, and nothing overrides it.
        out.append(
            Check(
                "kubernetes apt source signed",
                f"test -s {KEYRING} && grep -qx 'Signed-By: {KEYRING}' {SOURCES} && ! grep -qi trusted {SOURCES}",
            )
        )
    else:
        sem = re.escape(v.kubernetes_semver)
        for b in ("kubectl version --client", "kubeadm version -o short", "kubelet --version"):
            out.append(Check(f"command {b.split()[0]} version", b, "regex", sem))
    if v.kubernetes_cni_source_type == "pkg":
        cni = v.kubernetes_cni_deb_version
        out.append(
            Check(
                f"package kubernetes-cni {cni}",
                "dpkg-query -W -f='${Version}' kubernetes-cni",
                "regex",
                rf"^{re.escape(cni)}(-\d+(\.\d+)*)*$",
            )
            if cni
            else _installed("kubernetes-cni")
        )
    elif ctx.options.artifacts.mirror != LOCALCLOUD:
        # localcloud's mirror serves Debian's build of the plugins, which reports "version unknown".
        out.append(
            Check(
                "command host-device version",
                "/opt/cni/bin/host-device 2>&1 | sed -n 1p",  # sed reads all: no SIGPIPE
                "regex",
                re.escape(v.kubernetes_cni_semver.lstrip("v")),
            )
        )
    out += [
        # sysprep holds every installed package (image-builder #920): none may be left unheld.
        Check(
            "every package held",
            "dpkg-query -W -f='${Status} ${binary:Package}\\n' | awk '$1 == \"install\" && $3 == \"installed\" {print $4}'",
            "empty",
        ),
        _nofile_check(v.containerd_version),
        # The sandbox image containerd runs every pod with: configured, and already in the image.
        Check(
            "containerd sandbox image configured",
            'containerd config dump | grep -oE "(sandbox|sandbox_image) = [\'\\"][^\'\\"]+" | sed -E "s/.*[\'\\"]//" | sort -u',
            "equals",
            v.pause_image,
        ),
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
        out.append(Check("containerd sandbox image present", f"ctr -n k8s.io images ls -q | grep -qxF {v.pause_image}"))
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
        # empty, not "uninitialized": no systemd first boot on the nodes (sysprep.reset_cloud_init)
        Check("hygiene machine-id reset", "cat /etc/machine-id", "empty"),
        Check("hygiene no cloud-init instance", "ls /var/lib/cloud/data/instance-id 2>/dev/null || true", "empty"),
        Check(
            "hygiene no core dumps",
            "find /var/crash /var/lib/systemd/coredump /var/tmp /tmp -type f -name 'core*' 2>/dev/null || true",
            "empty",
        ),
        Check("hygiene /var/log at most 200 MB", "du -sm /var/log | cut -f1", "at_most", "200"),
        Check("hygiene no authorized_keys", "ls /root/.ssh/authorized_keys 2>/dev/null || true", "empty"),
        # The build server's network (netplan or ifupdown): each new server gets its own from cloud-init.
        Check(
            "hygiene no network config of the build server",
            f"ls -d {' '.join(NETWORK_CONFIG_FILES)} 2>/dev/null || true",
            "empty",
        ),
        *buildtime.gone_checks("hygiene "),
    ]
    return out


def verify(ctx: RecipeContext) -> Step:
    return Step("verify", "goss-equivalent and hygiene checks", tuple(checks(ctx)))
