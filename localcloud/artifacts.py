"""localcloud's artifact mirror: what a full-recipe build downloads, laid out like the upstream
URLs, served by localcloud itself under ``/__localcloud/mirror/files/`` (its VMs reach the host's
loopback at 10.0.2.2, so a guest sees ``http://10.0.2.2:<api port>/__localcloud/mirror/files``).

It serves two shapes of node, each named by a local var file (``VAR_FILES``):

- **production** (``config/vars/k8s-1.31-localcloud.json``, the ``local`` project): containerd 2.x
  and runc 1.3 from Debian's unstable suite, repacked as release tarballs; Kubernetes from a
  pkgs.k8s.io-shaped signed apt repository (``localcloud.aptrepo``: kubelet, kubeadm, kubectl,
  cri-tools, kubernetes-cni debs at the var file's versions); the pre-pulled images from a
  registry that answers (``localcloud.ociimages``, served by ``localcloud.api.registry``).
- **debian-12** (``config/vars/k8s-1.31-localcloud-debian12.json``): Debian 12's containerd 1.6,
  runc 1.1 and CNI plugins as release tarballs, kubelet/kubeadm/kubectl as release binaries.

Real binaries where Debian packages them (containerd, runc, the CNI plugins, a static pause);
**stand-ins** (``localcloud.standins``, marked ``STANDIN``) for kubelet, kubeadm, kubectl and
crictl and for the Kubernetes images, which only the internet has. They prove the recipe's
plumbing, not Kubernetes.

Populating is slow-ish (``apt-get download``) and cached like the base images, in
``<cache>/artifacts/mirror-v<N>``: ``python -m localcloud artifacts`` (``make artifacts``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from . import standins
from .aptrepo import Deb, write_repo
from .debs import POPULATE_COMMAND, DebSet, MirrorError, unpacked, upstream_version
from .ociimages import write_registry

__all__ = ["POPULATE_COMMAND", "MirrorError", "mirror_info", "mirror_metadata", "mirror_root", "populate_mirror"]

KUBERNETES = "v1.31.4"
SERIES = "v1.31"
CRICTL = "1.32.0"
PAUSE = "registry.k8s.io/pause:3.10"
IMAGES = standins.images(KUBERNETES)
# pkgs.k8s.io's v1.31 versions of the debs the apt repository holds.
KUBERNETES_DEB = "1.31.4-1.1"
CRI_TOOLS_DEB = "1.31.1-1.1"
KUBERNETES_CNI_DEB = "1.5.1-1.1"

BOOKWORM = DebSet("debian-binaries", ("containerd", "runc", "containernetworking-plugins"))
# containerd 2.x and runc 1.3 exist only in the unstable suite; runc needs glibc >= 2.38 (Debian 13).
UNSTABLE = DebSet("unstable-binaries", ("containerd", "runc"), suite="sid")
# The unstable suite moves: the mirror takes these releases (any Debian revision) or says so.
UNSTABLE_RELEASES = {"containerd": "2.1.9", "runc": "1.3.6"}

COMMON_VERSIONS = {
    "kubernetes_semver": KUBERNETES,
    "kubernetes_series": SERIES,
    "kubernetes_deb_version": KUBERNETES_DEB,
    "crictl_version": CRICTL,
    "pause_image": PAUSE,
}
# The var files naming what the mirror serves, per shape (config/vars keeps copies; a test
# holds them equal).
VAR_FILES: dict[str, dict[str, str]] = {
    "k8s-1.31-localcloud.json": {
        **COMMON_VERSIONS,
        "kubernetes_source_type": "pkg",
        "kubernetes_cni_source_type": "pkg",
        "kubernetes_cni_semver": "v1.5.1",
        "containerd_version": UNSTABLE_RELEASES["containerd"],
        "runc_version": UNSTABLE_RELEASES["runc"],
    },
    "k8s-1.31-localcloud-debian12.json": {
        **COMMON_VERSIONS,
        "kubernetes_source_type": "http",
        "kubernetes_cni_source_type": "http",
        "kubernetes_cni_semver": "v1.1.1",
        "containerd_version": "1.6.20",
        "runc_version": "1.1.5",
    },
}


def served_versions() -> dict[str, list[str]]:
    """Every version the mirror serves, per var-file key."""
    out: dict[str, set[str]] = {}
    for var_file in VAR_FILES.values():
        for key, value in var_file.items():
            out.setdefault(key, set()).add(value)
    return {k: sorted(v) for k, v in sorted(out.items())}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tar(dest: Path, files: dict[str, Path | bytes], mode: int = 0o755) -> None:
    with tarfile.open(dest, "w:gz") as t:
        for name, src in files.items():
            data = src.read_bytes() if isinstance(src, Path) else src
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            t.addfile(info, io.BytesIO(data))


# Bumped whenever what the mirror holds changes, so a cached mirror is rebuilt.
MIRROR_VERSION = 3
ARCH = "amd64"  # localcloud's VMs are x86 (TCG): the mirror serves amd64 only
# Where the files are served, below the API's base URL.
FILES_PATH = "/__localcloud/mirror/files"
# The registry mirror a local build writes into containerd's hosts.toml: localcloud.api.registry
# answers below it as a Harbor proxy cache does (/v2/proxy-<registry>/...).
REGISTRY_PATH = "registry"
# The pkgs.k8s.io-shaped apt repository, below the files path ({series}: v1.31).
APT_PATH = "pkgs/core:/stable:/{series}/deb/"


def mirror_root(cache_dir: Path) -> Path:
    return cache_dir / "artifacts" / f"mirror-v{MIRROR_VERSION}"


def mirror_metadata(root: Path) -> dict[str, Any] | None:
    """What a populated mirror serves (``mirror.json``), or None if it is not populated."""
    try:
        data = json.loads((root / "mirror.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("mirror_version") == MIRROR_VERSION else None


def _write(path: Path, data: bytes, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)
    return path


def _release_tarballs(r: Path, binaries: Path, containerd: str, runc: str) -> None:
    """containerd and runc as their GitHub releases lay them out."""
    cdir = r / "containerd" / f"v{containerd}"
    cdir.mkdir(parents=True)
    tarball = cdir / f"containerd-{containerd}-linux-{ARCH}.tar.gz"
    _tar(tarball, {f"bin/{b}": binaries / "usr/bin" / b for b in ("containerd", "containerd-shim-runc-v2", "ctr")})
    (cdir / f"{tarball.name}.sha256sum").write_text(f"{_sha(tarball)}  {tarball.name}\n")
    # containerd's own unit for this release (what upstream's containerd_service_url fetches from
    # the release tag): Debian ships it unchanged but for the binary's path.
    unit = next(
        p for p in (binaries / d / "systemd/system/containerd.service" for d in ("lib", "usr/lib")) if p.exists()
    ).read_text()
    (cdir / "containerd.service").write_text(unit.replace("ExecStart=/usr/bin/", "ExecStart=/usr/local/bin/"))
    # runc publishes one checksum file for every architecture
    path = _write(r / "runc" / f"v{runc}" / f"runc.{ARCH}", (binaries / "usr/sbin/runc").read_bytes(), 0o755)
    (path.parent / "runc.sha256sum").write_text(f"{_sha(path)}  runc.{ARCH}\n")


def _http_kubernetes(r: Path, bookworm: Path) -> None:
    """The ``http`` source: CNI tarball, kubelet/kubeadm/kubectl binaries, crictl tarball."""
    ndir = r / "cni" / "v1.1.1"
    ndir.mkdir(parents=True)
    cni = ndir / f"cni-plugins-linux-{ARCH}-v1.1.1.tgz"
    _tar(cni, {f"./{p.name}": p for p in sorted((bookworm / "usr/lib/cni").iterdir())})
    (ndir / f"{cni.name}.sha256").write_text(f"{_sha(cni)}\n")
    kdir = r / "k8s" / KUBERNETES / "bin/linux" / ARCH
    for name, data in {
        "kubelet": standins.kubelet(KUBERNETES),
        "kubectl": standins.kubectl(KUBERNETES),
        "kubeadm": standins.kubeadm(KUBERNETES),
    }.items():
        path = _write(kdir / name, data, 0o755)
        (kdir / f"{name}.sha256").write_text(f"{_sha(path)}\n")
    tdir = r / "crictl" / f"v{CRICTL}"
    tdir.mkdir(parents=True)
    crictl = tdir / f"crictl-v{CRICTL}-linux-{ARCH}.tar.gz"
    _tar(crictl, {"crictl": standins.crictl()})
    (tdir / f"{crictl.name}.sha256").write_text(f"{_sha(crictl)}\n")


# The unit and drop-in pkgs.k8s.io's kubelet and kubeadm debs install.
KUBELET_UNIT = """\
[Unit]
Description=kubelet: The Kubernetes Node Agent
Documentation=https://kubernetes.io/docs/
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
"""
KUBEADM_DROPIN = """\
# Note: This dropin only works with kubeadm and kubelet v1.11+
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
# This is a file that "kubeadm init" and "kubeadm join" generates at runtime, populating the KUBELET_KUBEADM_ARGS variable dynamically
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
# This is a file that the user can use for overrides of the kubelet args as a last resort. Preferably, the user should use
# the .NodeRegistration.KubeletExtraArgs object in the configuration files instead. KUBELET_EXTRA_ARGS should be sourced from this file.
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
"""


def kubernetes_debs(bookworm: Path) -> list[Deb]:
    """pkgs.k8s.io's five debs of the series, with the dependency fields its v1.31 packages
    declare (kubernetes/release's package specs); STANDIN programs inside, except
    kubernetes-cni, which carries Debian's real CNI plugins."""
    standin = "STANDIN (localcloud): "
    plugins = {f"/opt/cni/bin/{p.name}": (p.read_bytes(), 0o755) for p in sorted((bookworm / "usr/lib/cni").iterdir())}
    return [
        Deb("cri-tools", CRI_TOOLS_DEB, f"{standin}crictl", {"/usr/bin/crictl": (standins.crictl(), 0o755)}),
        Deb(
            "kubernetes-cni", KUBERNETES_CNI_DEB, "Binaries required to provision kubernetes container networking "
            "(Debian's containernetworking-plugins, repacked)", plugins,
        ),
        Deb("kubectl", KUBERNETES_DEB, f"{standin}kubectl", {"/usr/bin/kubectl": (standins.kubectl(KUBERNETES), 0o755)}),
        Deb(
            "kubelet", KUBERNETES_DEB, f"{standin}kubelet",
            {
                "/usr/bin/kubelet": (standins.kubelet(KUBERNETES), 0o755),
                "/usr/lib/systemd/system/kubelet.service": (KUBELET_UNIT.encode(), 0o644),
            },
            {"Depends": "iptables (>= 1.4.21), iproute2, socat, util-linux, mount, ethtool, ebtables, conntrack"},
            directories=("/etc/kubernetes/manifests",),
        ),
        Deb(
            "kubeadm", KUBERNETES_DEB, f"{standin}kubeadm",
            {
                "/usr/bin/kubeadm": (standins.kubeadm(KUBERNETES), 0o755),
                "/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf": (KUBEADM_DROPIN.encode(), 0o644),
            },
            {"Depends": "kubelet (>= 1.30.0), kubectl (>= 1.30.0), kubernetes-cni (>= 1.4.0), cri-tools (>= 1.30.0)"},
        ),
    ]  # fmt: skip


def _unstable(cache: Path) -> tuple[Path, dict[str, str]]:
    root, packages = unpacked(cache, UNSTABLE)
    moved = {p: v for p, v in packages.items() if upstream_version(v) != UNSTABLE_RELEASES[p]}
    if moved:
        raise MirrorError(
            f"Debian's unstable suite now has {', '.join(f'{p} {v}' for p, v in moved.items())}, not "
            f"{', '.join(f'{p} {UNSTABLE_RELEASES[p]}' for p in moved)}: update UNSTABLE_RELEASES in "
            "localcloud/artifacts.py and config/vars/k8s-1.31-localcloud.json to the new release"
        )
    return root, packages


def populate_mirror(cache_dir: Path, *, force: bool = False) -> Path:
    """Populate (or keep) the mirror in the cache; return its root."""
    root = mirror_root(cache_dir)
    if not force and mirror_metadata(root) is not None:
        return root
    started = dt.datetime.now(dt.UTC)
    bookworm, bookworm_packages = unpacked(cache_dir / "artifacts", BOOKWORM)
    unstable, unstable_packages = _unstable(cache_dir / "artifacts")
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root.parent, prefix=".build-") as tmp:
        staging = Path(tmp) / "mirror"
        staging.mkdir()
        _release_tarballs(staging, bookworm, "1.6.20", "1.1.5")
        _release_tarballs(staging, unstable, UNSTABLE_RELEASES["containerd"], UNSTABLE_RELEASES["runc"])
        _http_kubernetes(staging, bookworm)
        key = write_repo(
            staging / APT_PATH.format(series=SERIES),
            kubernetes_debs(bookworm),
            f"localcloud stand-in of pkgs.k8s.io core:/stable:/{SERIES}",
        )
        images = write_registry(staging / REGISTRY_PATH, IMAGES, PAUSE)
        meta = {
            "mirror_version": MIRROR_VERSION,
            "architectures": [ARCH],
            "versions": served_versions(),
            "var_files": VAR_FILES,
            "debian_packages": {
                "bookworm": bookworm_packages,
                "unstable": unstable_packages,
            },
            "apt_repository": {"path": APT_PATH, "series": [SERIES], "signing_key": key},
            "standins": ["kubelet", "kubeadm", "kubectl", "crictl"],
            "images": images,
            "populated_at": started.isoformat(timespec="seconds"),
        }
        (staging / "mirror.json").write_text(json.dumps(meta, indent=1) + "\n")
        if root.exists():
            shutil.rmtree(root)
        staging.rename(root)
    return root


def artifact_urls(base: str) -> dict[str, str]:
    """The project's ``provision.artifacts`` URLs for a mirror laid out like this one."""
    return {
        "containerd_url": f"{base}/containerd",
        "runc_url": f"{base}/runc",
        "cni_url": f"{base}/cni",
        "crictl_url": f"{base}/crictl",
        "kubernetes_http_source": f"{base}/k8s",
        "kubernetes_deb_repo": f"{base}/{APT_PATH}",
        "github_releases": f"{base}/github",
    }


def mirror_info(root: Path, api_host: str, api_port: int) -> dict[str, Any]:
    """The admin API's answer: where the mirror is, for the host and for the VMs, and what it serves."""
    meta = mirror_metadata(root)
    # QEMU user networking maps the guest's 10.0.2.2 to the host's 127.0.0.1 only.
    reachable = api_host in ("127.0.0.1", "localhost", "0.0.0.0", "::")
    guest = f"http://10.0.2.2:{api_port}{FILES_PATH}"
    keys = ("versions", "var_files", "debian_packages", "apt_repository", "standins", "images")
    return {
        "populated": meta is not None,
        "path": str(root),
        "host_url": f"http://127.0.0.1:{api_port}{FILES_PATH}",
        "guest_url": guest if reachable else None,
        "reachable_from_vms": reachable,
        "artifacts": artifact_urls(guest) if reachable else None,
        "registry_mirror": f"{guest}/{REGISTRY_PATH}" if reachable else None,
        "registry_log": f"http://127.0.0.1:{api_port}/__localcloud/mirror/registry-log",
        "populate_command": POPULATE_COMMAND,
        **({k: meta.get(k) for k in (*keys, "architectures", "populated_at")} if meta else {}),
    }
