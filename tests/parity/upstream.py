"""Running image-builder's playbooks the way its hcloud packer build does, against a localcloud VM.

What Debian 12 lacks for upstream's Ubuntu-only tasks is served as clearly named stand-ins
(see ``../shared/reference/image-builder-ansible-run.md``): a flat apt repository of empty
packages for the Ubuntu-only provider packages, upstream's ``extra_repos`` mechanism to add it,
and a one-task role that creates ``/usr/bin/ctr`` before upstream's http path calls it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import shlex
import subprocess
import tarfile
from pathlib import Path
from typing import Any

from provision.steps.containerd import CONTAINERD_UNIT

# Debian lacks these Ubuntu packages, which upstream's providers role installs unconditionally.
STANDIN_DEBS = ("cloud-initramfs-copymods", "linux-cloud-tools-generic", "linux-tools-generic")
# linux-cloud-tools ships hv-kvp-daemon.service, which upstream's hcloud path disables.
KVP_UNIT = "[Unit]\nDescription=STANDIN hv-kvp-daemon (no-op)\n\n[Service]\nExecStart=/bin/true\n\n[Install]\nWantedBy=multi-user.target\n"
K8S_IMAGES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy")
CTR_ROLE = "parity_ctr_link_standin"


def _tar_bytes(files: dict[str, bytes], gz: bool = False) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz" if gz else "w") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755 if name.startswith(("usr/", "./usr/")) else 0o644
            t.addfile(info, io.BytesIO(data))
    return out.getvalue()


def standin_deb(name: str, files: dict[str, bytes], workdir: Path) -> Path:
    """An empty package named ``name`` (Architecture: all), built with dpkg-deb."""
    root = workdir / f"{name}-pkg"
    (root / "DEBIAN").mkdir(parents=True, exist_ok=True)
    (root / "DEBIAN/control").write_text(
        f"Package: {name}\nVersion: 0.0-standin\nArchitecture: all\nMaintainer: capi-image parity <none>\n"
        f"Description: STANDIN {name}: empty stand-in, Debian has no such package\n"
    )
    for path, data in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    deb = workdir / f"{name}_0.0-standin_all.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(deb)], check=True, capture_output=True
    )
    return deb


def standin_repo(dest: Path) -> None:
    """A flat apt repository (``deb [trusted=yes] URL ./``) of the stand-in packages."""
    dest.mkdir(parents=True, exist_ok=True)
    entries = []
    for name in STANDIN_DEBS:
        files = (
            {"lib/systemd/system/hv-kvp-daemon.service": KVP_UNIT.encode()}
            if name == "linux-cloud-tools-generic"
            else {}
        )
        deb = standin_deb(name, files, dest)
        control = subprocess.run(["dpkg-deb", "-f", str(deb)], check=True, capture_output=True, text=True).stdout
        data = deb.read_bytes()
        entries.append(
            control.rstrip("\n")
            + f"\nFilename: ./{deb.name}\nSize: {len(data)}\nSHA256: {hashlib.sha256(data).hexdigest()}\n"
        )
    packages = "\n".join(entries).encode()
    (dest / "Packages").write_bytes(packages)
    (dest / "Packages.gz").write_bytes(gzip.compress(packages, mtime=0))


def docker_archive(image: str, arch: str, tag: str) -> bytes:
    """A ``docker save`` archive of one empty image tagged ``<image>-<arch>:<tag>`` — the shape
    upstream's modify-k8s-img.sh rewrites (manifest.json and repositories)."""
    layer = _tar_bytes({})
    diff_id = hashlib.sha256(layer).hexdigest()
    config = json.dumps(
        {
            "architecture": arch,
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
        }
    ).encode()
    config_id = hashlib.sha256(config).hexdigest()
    repo = f"registry.k8s.io/{image}-{arch}"
    manifest = [{"Config": f"{config_id}.json", "RepoTags": [f"{repo}:{tag}"], "Layers": [f"{diff_id}/layer.tar"]}]
    return _tar_bytes(
        {
            f"{config_id}.json": config,
            f"{diff_id}/layer.tar": layer,
            "manifest.json": json.dumps(manifest).encode(),
            "repositories": json.dumps({repo: {tag: diff_id}}).encode(),
        }
    )


def write_extras(dest: Path, mirror_root: Path, kubernetes_semver: str, arch: str = "amd64") -> None:
    """What upstream's run needs beyond localcloud's mirror: the stand-in apt repository,
    containerd's unit file (the one this recipe renders), and the image tarballs of its http
    path — beside copies of the mirror's kubelet/kubeadm/kubectl, because upstream fetches
    binaries and images from one base URL (``kubernetes_http_source``)."""
    standin_repo(dest / "standins")
    (dest / "containerd.service").write_text(CONTAINERD_UNIT)
    images = dest / "k8s" / kubernetes_semver / "bin/linux" / arch
    images.mkdir(parents=True, exist_ok=True)
    for binary in (mirror_root / "k8s" / kubernetes_semver / "bin/linux" / arch).iterdir():
        (images / binary.name).write_bytes(binary.read_bytes())
    for image in K8S_IMAGES:
        (images / f"{image}.tar").write_bytes(docker_archive(image, arch, kubernetes_semver))
    role = dest / "roles" / CTR_ROLE / "tasks"
    role.mkdir(parents=True, exist_ok=True)
    # Upstream's http path runs /usr/bin/ctr ("Load Kubernetes images") before its own "Symlink
    # cri-tools" task creates that link; the same link, earlier. The end state is unchanged.
    (role / "main.yml").write_text(
        "- name: STANDIN create /usr/bin/ctr before upstream's http path calls it\n"
        "  ansible.builtin.file: {src: /usr/local/bin/ctr, dest: /usr/bin/ctr, state: link, force: true}\n"
    )
    (dest / "standins.list").write_text("")  # rewritten with the URL by ansible_vars()


USER_TEMPLATE = re.compile(r"\{\{\s*user\s*`([^`]+)`\s*\}\}")


def packer_user_vars(reference: Path, var_file: dict[str, Any], build: str) -> dict[str, str]:
    """The packer user variables of an hcloud build: ``packer/hcloud/packer.json``'s variables
    are defaults, which the var files override in the order image-builder's Makefile passes
    them — ``packer/config/*.json`` (Linux ones), the hcloud config, the build's OS file, the
    user's var file; templates resolved."""
    packer = reference / "packer"
    merged: dict[str, Any] = dict(json.loads((packer / "hcloud/packer.json").read_text()).get("variables", {}))
    for f in sorted((packer / "config").glob("*.json")):
        merged.update(json.loads(f.read_text()))
    merged.update(json.loads((packer / "hcloud/hcloud-config.json").read_text()))
    os_file = packer / "hcloud" / f"{build}.json"
    if os_file.exists():
        merged.update(json.loads(os_file.read_text()))
    merged.update(var_file)
    out = {k: "" if v is None else str(v) for k, v in merged.items()}
    for _ in range(5):  # templates referring to templates
        current = dict(out)
        out = {k: USER_TEMPLATE.sub(lambda m, c=current: c.get(m.group(1), ""), v) for k, v in current.items()}
    return out


def ansible_vars(user: dict[str, str], mirror: str, extras: str, extras_dir: Path) -> tuple[str, dict[str, Any]]:
    """(the ``ansible_common_vars`` string packer passes, the extra vars this run adds).

    ``mirror``/``extras``: base URLs of localcloud's artifact mirror and of the extras, as the
    guest reaches them."""
    v = user
    (extras_dir / "standins.list").write_text(f"deb [trusted=yes] {extras}/standins ./\n")
    extra: dict[str, Any] = {
        "packer_build_name": "hcloud",
        "packer_builder_type": "hcloud",
        "packer_http_addr": "",
        "containerd_url": f"{mirror}/containerd/v{v['containerd_version']}/containerd-{v['containerd_version']}-linux-amd64.tar.gz",
        "containerd_runc_url": f"{mirror}/runc/v{v['runc_version']}/runc.amd64",
        "containerd_runc_checksum_url": f"{mirror}/runc/v{v['runc_version']}/runc.sha256sum",
        "crictl_url": f"{mirror}/crictl/v{v['crictl_version']}/crictl-v{v['crictl_version']}-linux-amd64.tar.gz",
        "kubernetes_cni_http_source": f"{mirror}/cni",
        # binaries and image tarballs from one base URL, as upstream expects (see write_extras)
        "kubernetes_http_source": f"{extras}/k8s",
        "containerd_service_url": f"{extras}/containerd.service",
        # Debian has no linux-{cloud-,}tools-virtual (Ubuntu-only metapackages).
        "common_virt_debs": ["open-vm-tools"],
        "extra_repos": str(extras_dir / "standins.list"),
        "remove_extra_repos": True,
        "node_custom_roles_pre": CTR_ROLE,
    }
    return v["ansible_common_vars"], extra


def playbook_command(
    ansible_playbook: str,
    reference: Path,
    playbook: str,
    inventory: str,
    common: str,
    extra: dict[str, Any],
    extra_file: Path,
) -> list[str]:
    extra_file.write_text(json.dumps(extra))
    return [
        ansible_playbook,
        "-i",
        inventory,
        str(reference / "ansible" / playbook),
        "--extra-vars",
        common,
        "--extra-vars",
        f"@{extra_file}",
    ]


def describe(cmd: list[str]) -> str:
    return " ".join(shlex.quote(c) for c in cmd)
