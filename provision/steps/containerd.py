"""Step 4, containerd (image-builder's containerd role): release tarball, upstream unit, runc,
CNI plugins, drop-ins, config.toml (v2 for 1.x, v3 for 2.x), crictl.yaml."""

from __future__ import annotations

from typing import Any

import tomli_w

from ..options import RecipeContext
from ..plan import Put, Run, Step
from .common import apt_install, fetch, pinned_or_published

CERTS_DIR = "/etc/containerd/certs.d"

# containerd's own unit (containerd/containerd containerd.service) for the installed major,
# rendered here instead of fetched unverified from raw.githubusercontent.com as image-builder
# does. 1.x starts after local-fs and raises the open-files limit to infinity; 2.x starts after
# dbus (the systemd cgroup driver talks to it) and leaves the open-files limit at systemd's
# default (containerd 2.0 removed LimitNOFILE: containers get 1024:524288 unless set).
CONTAINERD_UNITS = {
    1: ("network.target local-fs.target", "LimitNOFILE=infinity\n"),
    2: ("network.target dbus.service", ""),
}


def containerd_unit(version: str) -> str:
    after, nofile = CONTAINERD_UNITS[min(major(version), 2)]
    return f"""\
[Unit]
Description=containerd container runtime
Documentation=https://containerd.io
After={after}

[Service]
ExecStartPre=-/sbin/modprobe overlay
ExecStart=/usr/local/bin/containerd
Type=notify
Delegate=yes
KillMode=process
Restart=always
RestartSec=5
LimitNPROC=infinity
LimitCORE=infinity
{nofile}TasksMax=infinity
OOMScoreAdjust=-999

[Install]
WantedBy=multi-user.target
"""


def major(version: str) -> int:
    return int(version.lstrip("v").split(".")[0])


def config_toml(ctx: RecipeContext) -> dict[str, Any]:
    v = ctx.versions
    runc = {"runtime_type": "io.containerd.runc.v2", "options": {"SystemdCgroup": True}}
    if major(v.containerd_version) >= 2:
        return {
            "version": 3,
            "imports": ["/etc/containerd/conf.d/*.toml"],
            "plugins": {
                "io.containerd.cri.v1.images": {
                    "pinned_images": {"sandbox": v.pause_image},
                    "registry": {"config_path": CERTS_DIR},
                },
                "io.containerd.cri.v1.runtime": {"containerd": {"runtimes": {"runc": runc}}},
            },
        }
    return {
        "version": 2,
        "imports": ["/etc/containerd/conf.d/*.toml"],
        "plugins": {
            "io.containerd.grpc.v1.cri": {
                "sandbox_image": v.pause_image,
                "registry": {"config_path": CERTS_DIR},
                "containerd": {"runtimes": {"runc": runc}},
            }
        },
    }


def urls(ctx: RecipeContext) -> dict[str, tuple[str, str]]:
    """name -> (download URL, checksum: sha256 or @checksum-url)."""
    v, a, pins = ctx.versions, ctx.options.artifacts, ctx.options.artifacts.sha256
    arch = ctx.deb_arch
    cver = v.containerd_version.lstrip("v")
    cbase = f"{(a.containerd_url or v.containerd_url).rstrip('/')}/v{cver}"
    tarball = f"containerd-{cver}-linux-{arch}.tar.gz"
    rbase = f"{(a.runc_url or v.runc_url).rstrip('/')}/v{v.runc_version.lstrip('v')}"
    runc = f"runc.{arch}"
    cni = f"cni-plugins-linux-{arch}-{v.kubernetes_cni_semver}.tgz"
    cni_base = f"{(a.cni_url or v.kubernetes_cni_http_source).rstrip('/')}/{v.kubernetes_cni_semver}"
    return {
        "containerd": (f"{cbase}/{tarball}", pinned_or_published(pins, tarball, f"{cbase}/{tarball}.sha256sum")),
        "runc": (f"{rbase}/{runc}", pinned_or_published(pins, runc, f"{rbase}/runc.sha256sum")),
        "cni": (f"{cni_base}/{cni}", pinned_or_published(pins, cni, f"{cni_base}/{cni}.sha256")),
    }


def containerd(ctx: RecipeContext) -> Step:
    u = urls(ctx)
    ops: list[Put | Run] = [
        apt_install(["libseccomp2"]),
        fetch(u["containerd"][0], "/tmp/capi-image/containerd.tar.gz", u["containerd"][1]),
        Run("tar -C /usr/local --no-overwrite-dir -xzf /tmp/capi-image/containerd.tar.gz"),
        fetch(u["runc"][0], "/tmp/capi-image/runc", u["runc"][1]),
        Run("install -D -m 0755 /tmp/capi-image/runc /usr/local/sbin/runc"),
    ]
    if ctx.versions.kubernetes_cni_source_type == "http":
        ops += [
            fetch(u["cni"][0], "/tmp/capi-image/cni.tgz", u["cni"][1]),
            Run("mkdir -p /opt/cni/bin && tar -C /opt/cni/bin -xzf /tmp/capi-image/cni.tgz"),
        ]
    ops += [
        Put("/etc/systemd/system/containerd.service", containerd_unit(ctx.versions.containerd_version).encode(), 0o644),
        Put("/etc/systemd/system/containerd.service.d/memory-pressure.conf", b"[Service]\nOOMScoreAdjust=-999\n"),
        Put("/etc/systemd/system/containerd.service.d/max-tasks.conf", b"[Service]\nTasksMax=infinity\n"),
        Run(f"install -d -m 0755 /etc/containerd /etc/containerd/conf.d {CERTS_DIR}"),
        Put("/etc/containerd/config.toml", tomli_w.dumps(config_toml(ctx)).encode()),
        Put("/etc/crictl.yaml", f"runtime-endpoint: unix://{ctx.versions.containerd_cri_socket}\n".encode()),
        Run("systemctl daemon-reload && systemctl enable containerd && systemctl restart containerd"),
        Run("ln -sf /usr/local/bin/ctr /usr/bin/ctr"),  # upstream's "Symlink cri-tools" (crictl: kubernetes step)
        Run("rm -rf /tmp/capi-image"),
    ]
    return Step("containerd", "containerd, runc, CNI plugins, config.toml, crictl.yaml", tuple(ops))
