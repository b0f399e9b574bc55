"""localcloud's artifact mirror: what a full-recipe build downloads, laid out like the upstream
URLs, served by localcloud itself under ``/__localcloud/mirror/files/`` (its VMs reach the host's
loopback at 10.0.2.2, so a guest sees ``http://10.0.2.2:<api port>/__localcloud/mirror/files``).

Real binaries where Debian packages them: containerd, runc and the CNI plugins are repacked from
Debian 12's own packages (``apt-get download``) as release tarballs, so containerd really runs
with the rendered config. **Stand-ins** for what only the internet has — kubelet, kubeadm,
kubectl and crictl are shell scripts named ``STANDIN`` in their first lines: they answer the
version and completion commands the recipe and its checks use; the kubeadm stand-in "pre-pulls"
by importing a tiny OCI archive it carries (one empty layer indexed under the seven image names)
into containerd's ``k8s.io`` namespace (real containerd, fake images); the crictl stand-in reads
containerd through ``ctr``. They prove the recipe's plumbing, not Kubernetes.

Populating is slow-ish (``apt-get download``) and cached like the base image, in
``<cache>/artifacts/mirror-v<N>``: ``python -m localcloud artifacts`` (``make artifacts``).
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

# What Debian 12 packages (the versions the local var file must name).
CONTAINERD = "1.6.20"
RUNC = "1.1.5"
CNI = "v1.1.1"
KUBERNETES = "v1.31.4"
CRICTL = "1.32.0"
IMAGES = (
    f"registry.k8s.io/kube-apiserver:{KUBERNETES}",
    f"registry.k8s.io/kube-controller-manager:{KUBERNETES}",
    f"registry.k8s.io/kube-scheduler:{KUBERNETES}",
    f"registry.k8s.io/kube-proxy:{KUBERNETES}",
    "registry.k8s.io/coredns/coredns:v1.11.3",
    "registry.k8s.io/pause:3.10",
    "registry.k8s.io/etcd:3.5.15-0",
)
DEBS = ("containerd", "runc", "containernetworking-plugins")


def local_var_file() -> dict[str, str]:
    """An image-builder var file naming what this mirror serves."""
    return {
        "kubernetes_semver": KUBERNETES,
        "kubernetes_series": "v1.31",
        "kubernetes_deb_version": "1.31.4-1.1",
        "kubernetes_source_type": "http",
        "kubernetes_cni_source_type": "http",
        "kubernetes_cni_semver": CNI,
        "containerd_version": CONTAINERD,
        "runc_version": RUNC,
        "crictl_version": CRICTL,
        "pause_image": "registry.k8s.io/pause:3.10",
    }


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tar(dest: Path, files: dict[str, Path | bytes], mode: int = 0o755) -> None:
    with tarfile.open(dest, "w:gz") as t:
        for name, src in files.items():
            data = src.read_bytes() if isinstance(src, Path) else src
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            t.addfile(info, io.BytesIO(data))


def _standin(name: str, body: str) -> bytes:
    return (
        f"#!/bin/bash\n# STANDIN {name}: a stand-in for the real binary, which only the internet has.\n{body}".encode()
    )


def _oci_archive() -> bytes:
    """One tiny image (an empty layer), indexed under every name kubeadm would pull."""
    raw_layer = io.BytesIO()
    with tarfile.open(fileobj=raw_layer, mode="w"):
        pass
    layer = gzip.compress(raw_layer.getvalue(), mtime=0)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(raw_layer.getvalue()).hexdigest()}"]},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": f"sha256:{hashlib.sha256(config).hexdigest()}",
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": f"sha256:{hashlib.sha256(layer).hexdigest()}",
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    index = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": f"sha256:{hashlib.sha256(manifest).hexdigest()}",
                    "size": len(manifest),
                    "platform": {"architecture": "amd64", "os": "linux"},
                    "annotations": {
                        "io.containerd.image.name": name,
                        "org.opencontainers.image.ref.name": name.rsplit(":", 1)[1],
                    },
                }
                for name in IMAGES
            ],
        }
    ).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as t:
        for name, data in {
            "oci-layout": b'{"imageLayoutVersion": "1.0.0"}',
            "index.json": index,
            f"blobs/sha256/{hashlib.sha256(layer).hexdigest()}": layer,
            f"blobs/sha256/{hashlib.sha256(config).hexdigest()}": config,
            f"blobs/sha256/{hashlib.sha256(manifest).hexdigest()}": manifest,
        }.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return out.getvalue()


# Bumped whenever what the mirror holds changes, so a cached mirror is rebuilt.
MIRROR_VERSION = 2
ARCH = "amd64"  # localcloud's VMs are x86 (TCG): the mirror serves amd64 only
# Where the files are served, below the API's base URL.
FILES_PATH = "/__localcloud/mirror/files"
# The registry mirror a local build writes into containerd's hosts.toml. A stand-in: nothing
# answers registry requests there, so containerd falls back to the upstream registry; the
# build proves the hosts.toml plumbing, not a proxy cache.
REGISTRY_PATH = "registry"
POPULATE_COMMAND = "make artifacts  (or: python -m localcloud artifacts)"


class MirrorError(RuntimeError):
    """The mirror cannot be populated; the message says what is missing and what fixes it."""


def mirror_root(cache_dir: Path) -> Path:
    return cache_dir / "artifacts" / f"mirror-v{MIRROR_VERSION}"


def mirror_metadata(root: Path) -> dict[str, Any] | None:
    """What a populated mirror serves (``mirror.json``), or None if it is not populated."""
    try:
        data = json.loads((root / "mirror.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("mirror_version") == MIRROR_VERSION else None


def _apt_download(dest: Path) -> None:
    if shutil.which("apt-get") is None:
        raise MirrorError(
            "apt-get is missing: the artifact mirror repacks Debian 12's containerd, runc and CNI plugins, "
            "so it is populated on a Debian host"
        )

    def download() -> subprocess.CompletedProcess[str]:
        return subprocess.run(["apt-get", "download", *DEBS], cwd=dest, capture_output=True, text=True)

    r = download()
    if r.returncode != 0 and os.geteuid() == 0:
        # A fresh machine may have no package lists yet.
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, text=True)
        r = download()
    if r.returncode != 0:
        raise MirrorError(
            f"could not download Debian's {', '.join(DEBS)} with apt-get download: {r.stderr.strip()[-800:]}\n"
            "The artifact mirror needs Debian 12's package archive: check the apt sources and the network "
            f"(as root: apt-get update), then run {POPULATE_COMMAND}."
        )


def debian_binaries(cache: Path) -> tuple[Path, dict[str, str]]:
    """containerd, runc and CNI plugins from Debian 12's packages, unpacked once; with the
    package versions."""
    root = cache / "debian-binaries"
    done = root / ".done"
    if done.exists():
        return root, json.loads(done.read_text() or "{}")
    debs = cache / "debs"
    shutil.rmtree(debs, ignore_errors=True)
    debs.mkdir(parents=True)
    _apt_download(debs)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    versions = {}
    for deb in sorted(debs.glob("*.deb")):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
        fields = subprocess.run(
            ["dpkg-deb", "-f", str(deb), "Package", "Version"], check=True, capture_output=True, text=True
        ).stdout
        meta = dict(line.split(": ", 1) for line in fields.splitlines() if ": " in line)
        versions[meta["Package"]] = meta["Version"]
    done.write_text(json.dumps(versions))
    return root, versions


def _write(path: Path, data: bytes, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)
    return path


def _kubeadm_standin() -> bytes:
    archive = base64.b64encode(gzip.compress(_oci_archive(), mtime=0)).decode()
    return _standin(
        "kubeadm",
        f'case "$*" in "version -o short") echo "{KUBERNETES}";;\n'
        '  "completion bash") echo "# kubeadm completion (stand-in)";;\n'
        # The images it "pulls" travel inside the stand-in: no URL, so the mirror can move.
        '  "config images pull"*) tmp=$(mktemp) && base64 -d <<\'EOF\' | gunzip > "$tmp" && '
        'ctr -n k8s.io images import "$tmp"; rc=$?; rm -f "$tmp"; exit $rc;;\n'
        f"{archive}\nEOF\n"
        '  *) echo "kubeadm stand-in" >&2; exit 1;; esac\n',
    )


def _layout(r: Path, debian: Path) -> None:
    """Write the mirror's files under ``r``, as the upstream release URLs lay them out."""
    # containerd release tarball: bin/<binaries>; checksum file "<hash>  <name>"
    cdir = r / "containerd" / f"v{CONTAINERD}"
    cdir.mkdir(parents=True)
    tarball = cdir / f"containerd-{CONTAINERD}-linux-{ARCH}.tar.gz"
    _tar(tarball, {f"bin/{b}": debian / "usr/bin" / b for b in ("containerd", "containerd-shim-runc-v2", "ctr")})
    (cdir / f"{tarball.name}.sha256sum").write_text(f"{_sha(tarball)}  {tarball.name}\n")
    # runc publishes one checksum file for every architecture
    runc = _write(r / "runc" / f"v{RUNC}" / f"runc.{ARCH}", (debian / "usr/sbin/runc").read_bytes(), 0o755)
    (runc.parent / "runc.sha256sum").write_text(f"{_sha(runc)}  runc.{ARCH}\n")
    ndir = r / "cni" / CNI
    ndir.mkdir(parents=True)
    cni = ndir / f"cni-plugins-linux-{ARCH}-{CNI}.tgz"
    _tar(cni, {f"./{p.name}": p for p in sorted((debian / "usr/lib/cni").iterdir())})
    (ndir / f"{cni.name}.sha256").write_text(f"{_sha(cni)}\n")

    kdir = r / "k8s" / KUBERNETES / "bin/linux" / ARCH
    standins = {
        "kubelet": _standin(
            "kubelet",
            f'case "${{1:-}}" in --version) echo "Kubernetes {KUBERNETES}";; '
            '*) echo "kubelet stand-in: no cluster config" >&2; exit 1;; esac\n',
        ),
        "kubectl": _standin(
            "kubectl",
            f'case "$*" in "version --client"*) echo "Client Version: {KUBERNETES}";;\n'
            '  "completion bash") echo "# kubectl completion (stand-in)";; *) echo "kubectl stand-in" >&2; exit 1;; esac\n',
        ),
        "kubeadm": _kubeadm_standin(),
    }
    for name, data in standins.items():
        path = _write(kdir / name, data, 0o755)
        (kdir / f"{name}.sha256").write_text(f"{_sha(path)}\n")
    crictl_body = (
        'case "${1:-}" in\n'
        '  completion) echo "# crictl completion (stand-in)";;\n'
        "  ps) ctr -n k8s.io containers ls -q >/dev/null;;\n"
        "  images) names=$(ctr -n k8s.io images ls -q | grep -v '^sha256:');\n"
        '    printf \'{"images":[\'; sep=""; for n in $names; do printf \'%s{"repoTags":["%s"]}\' "$sep" "$n"; sep=","; done; printf "]}\\n";;\n'
        '  *) echo "crictl stand-in" >&2; exit 1;;\n'
        "esac\n"
    )
    tdir = r / "crictl" / f"v{CRICTL}"
    tdir.mkdir(parents=True)
    crictl = tdir / f"crictl-v{CRICTL}-linux-{ARCH}.tar.gz"
    _tar(crictl, {"crictl": _standin("crictl", crictl_body)})
    (tdir / f"{crictl.name}.sha256").write_text(f"{_sha(crictl)}\n")
    (r / REGISTRY_PATH).mkdir()
    (r / REGISTRY_PATH / "README").write_text(
        "A stand-in registry mirror: nothing answers registry requests here; containerd falls back\n"
        "to the upstream registry named in hosts.toml.\n"
    )


def populate_mirror(cache_dir: Path, *, force: bool = False) -> Path:
    """Populate (or keep) the mirror in the cache; return its root."""
    root = mirror_root(cache_dir)
    if not force and mirror_metadata(root) is not None:
        return root
    started = dt.datetime.now(dt.UTC)
    debian, packages = debian_binaries(cache_dir / "artifacts")
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root.parent, prefix=".build-") as tmp:
        staging = Path(tmp) / "mirror"
        staging.mkdir()
        _layout(staging, debian)
        meta = {
            "mirror_version": MIRROR_VERSION,
            "architectures": [ARCH],
            "versions": local_var_file(),
            "debian_packages": packages,
            "standins": ["kubelet", "kubeadm", "kubectl", "crictl"],
            "images": list(IMAGES),
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
        "github_releases": f"{base}/github",
    }


def mirror_info(root: Path, api_host: str, api_port: int) -> dict[str, Any]:
    """The admin API's answer: where the mirror is, for the host and for the VMs, and what it serves."""
    meta = mirror_metadata(root)
    # QEMU user networking maps the guest's 10.0.2.2 to the host's 127.0.0.1 only.
    reachable = api_host in ("127.0.0.1", "localhost", "0.0.0.0", "::")
    guest = f"http://10.0.2.2:{api_port}{FILES_PATH}"
    return {
        "populated": meta is not None,
        "path": str(root),
        "host_url": f"http://127.0.0.1:{api_port}{FILES_PATH}",
        "guest_url": guest if reachable else None,
        "reachable_from_vms": reachable,
        "artifacts": artifact_urls(guest) if reachable else None,
        "registry_mirror": f"{guest}/{REGISTRY_PATH}" if reachable else None,
        "populate_command": POPULATE_COMMAND,
        **(
            {k: meta.get(k) for k in ("versions", "debian_packages", "standins", "architectures", "populated_at")}
            if meta
            else {}
        ),
    }
