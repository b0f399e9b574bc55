"""localcloud's artifact mirror for real-VM builds: loopback HTTP, laid out like the upstream URLs,
reachable from localcloud's VMs at 10.0.2.2.

Real binaries where Debian packages them: containerd, runc and the CNI plugins are repacked from
Debian 12's own packages (``apt-get download``), so containerd really runs with the rendered
config. **Stand-ins** for what only the internet has — kubelet, kubeadm, kubectl and crictl are
shell scripts named ``STANDIN`` in their first lines: they answer the version and completion
commands the recipe and its checks use; the kubeadm stand-in "pre-pulls" by importing a tiny
OCI archive carrying the seven image names into containerd's ``k8s.io`` namespace (real
containerd, fake images); the crictl stand-in reads containerd through ``ctr``. They prove the
recipe's plumbing, not Kubernetes.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
import threading
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.staticfiles import StaticFiles

from localcloud.server import bound_port

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


def debian_binaries(cache: Path) -> Path:
    """containerd, runc and CNI plugins from Debian 12's packages, unpacked once."""
    root = cache / "debian-binaries"
    if (root / ".done").exists():
        return root
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", *DEBS], cwd=debs, check=True, capture_output=True)
    root.mkdir(parents=True, exist_ok=True)
    for deb in debs.glob("*.deb"):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    (root / ".done").touch()
    return root


@dataclass
class ArtifactMirror:
    root: Path
    port: int = 0

    @property
    def host_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def guest_url(self) -> str:
        """The mirror as a localcloud VM sees it (QEMU user networking)."""
        return f"http://10.0.2.2:{self.port}"

    def artifacts_config(self) -> dict[str, str]:
        u = self.guest_url
        return {
            "containerd_url": f"{u}/containerd",
            "runc_url": f"{u}/runc",
            "cni_url": f"{u}/cni",
            "crictl_url": f"{u}/crictl",
            "kubernetes_http_source": f"{u}/k8s",
            "github_releases": f"{u}/github",
        }

    def populate(self, debian: Path) -> None:
        r = self.root
        arch = "amd64"
        # containerd release tarball layout: bin/<binaries>, checksum file "<hash>  <name>"
        cdir = r / "containerd" / f"v{CONTAINERD}"
        cdir.mkdir(parents=True, exist_ok=True)
        tarball = cdir / f"containerd-{CONTAINERD}-linux-{arch}.tar.gz"
        _tar(tarball, {f"bin/{b}": debian / "usr/bin" / b for b in ("containerd", "containerd-shim-runc-v2", "ctr")})
        (cdir / f"{tarball.name}.sha256sum").write_text(f"{_sha(tarball)}  {tarball.name}\n")
        rdir = r / "runc" / f"v{RUNC}"
        rdir.mkdir(parents=True, exist_ok=True)
        runc = rdir / f"runc.{arch}"
        runc.write_bytes((debian / "usr/sbin/runc").read_bytes())
        (rdir / "runc.sha256sum").write_text(f"{'0' * 64}  runc.arm64\n{_sha(runc)}  runc.{arch}\n")
        ndir = r / "cni" / CNI
        ndir.mkdir(parents=True, exist_ok=True)
        cni = ndir / f"cni-plugins-linux-{arch}-{CNI}.tgz"
        _tar(cni, {f"./{p.name}": p for p in sorted((debian / "usr/lib/cni").iterdir())})
        (ndir / f"{cni.name}.sha256").write_text(f"{_sha(cni)}\n")

        images = r / "images" / "k8s-images.tar"
        images.parent.mkdir(parents=True, exist_ok=True)
        images.write_bytes(_oci_archive())
        kdir = r / "k8s" / KUBERNETES / "bin/linux" / arch
        kdir.mkdir(parents=True, exist_ok=True)
        standins = {
            "kubelet": f'case "${{1:-}}" in --version) echo "Kubernetes {KUBERNETES}";; *) echo "kubelet stand-in: no cluster config" >&2; exit 1;; esac\n',
            "kubectl": (
                f'case "$*" in "version --client"*) echo "Client Version: {KUBERNETES}";;\n'
                '  "completion bash") echo "# kubectl completion (stand-in)";; *) echo "kubectl stand-in" >&2; exit 1;; esac\n'
            ),
            "kubeadm": (
                f'case "$*" in "version -o short") echo "{KUBERNETES}";;\n'
                '  "completion bash") echo "# kubeadm completion (stand-in)";;\n'
                f'  "config images pull"*) curl -fsSL {self.guest_url}/images/k8s-images.tar -o /tmp/k8s-images.tar && '
                "ctr -n k8s.io images import /tmp/k8s-images.tar && rm -f /tmp/k8s-images.tar;;\n"
                '  *) echo "kubeadm stand-in" >&2; exit 1;; esac\n'
            ),
        }
        for name, body in standins.items():
            path = kdir / name
            path.write_bytes(_standin(name, body))
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
        tdir.mkdir(parents=True, exist_ok=True)
        crictl = tdir / f"crictl-v{CRICTL}-linux-{arch}.tar.gz"
        _tar(crictl, {"crictl": _standin("crictl", crictl_body)})
        (tdir / f"{crictl.name}.sha256").write_text(f"{_sha(crictl)}\n")


class MirrorServer:
    """Serves ``root`` on 127.0.0.1 in a background thread."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        app = Starlette()
        app.mount("/", StaticFiles(directory=str(root)))
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.mirror = ArtifactMirror(root)

    def __enter__(self) -> ArtifactMirror:
        self.thread.start()
        while not self.server.started:
            threading.Event().wait(0.02)
        self.mirror.port = bound_port(self.server)
        return self.mirror

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def full_recipe_project(endpoint: str, mirror: ArtifactMirror, var_file: Path) -> dict[str, object]:
    """A capi-image project (as data) that builds the full recipe on localcloud's debian-12
    against this mirror; the real-VM tests and ``make bench --vm`` use it."""
    var_file.write_text(json.dumps(local_var_file()))
    return {
        "name": "local-full",
        "endpoint": endpoint,
        "location": "fsn1",
        "server_type": "cpx22",
        "os": "debian-12",
        "versions": var_file,
        "recipe": "full",
        "provision": {
            "artifacts": mirror.artifacts_config(),
            "registry_mirror": {"url": mirror.guest_url + "/harbor"},
        },
        "timeouts": {"ssh": 600, "step": 1200},
        "polling": {"initial": 1},
    }
