"""Running image-builder's playbooks the way its hcloud packer build does, against a localcloud VM.

The production shape (Debian 13 networked as Ubuntu's cloud images, Kubernetes from the
pkgs.k8s.io-shaped repository, containerd 2.x from the mirror, containerd's own unit from the
mirror — never a file of this recipe). What the test bed lacks for upstream's tasks is served
as clearly named stand-ins (see ``../shared/reference/image-builder-ansible-run.md``):

- a flat apt repository of empty packages for the Ubuntu-only provider packages, added with
  upstream's own ``extra_repos`` mechanism;
- a role run before upstream's node role (``node_custom_roles_pre``) that installs an ``apt-key``
  stand-in (Debian 13's apt has no ``apt-key``; upstream's ``apt_key`` task needs one: it files
  the key under ``/etc/apt/trusted.gpg.d``, as ``apt-key add`` did), a ``hosts.toml`` for
  registry.k8s.io pointing at localcloud's registry (the test bed has no internet: upstream's
  pre-pull goes through the mirror as this recipe's does), and a no-op ``cloud-init.service``
  (the name upstream's providers role enables; cloud-init 24.3 renamed it).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

# Debian lacks these Ubuntu packages, which upstream's providers role installs unconditionally.
STANDIN_DEBS = ("cloud-initramfs-copymods", "linux-cloud-tools-generic", "linux-tools-generic")
# linux-cloud-tools ships hv-kvp-daemon.service, which upstream's hcloud path disables.
KVP_UNIT = "[Unit]\nDescription=STANDIN hv-kvp-daemon (no-op)\n\n[Service]\nExecStart=/bin/true\n\n[Install]\nWantedBy=multi-user.target\n"
PRE_ROLE = "parity_testbed_standins"
APT_KEY = "/usr/local/sbin/apt-key"
APT_KEY_RING = "/etc/apt/trusted.gpg.d/apt-key-standin.gpg"
# gpg keeps its own keybox (apt cannot read that format); apt gets a binary export of it.
APT_KEY_BOX = "/var/lib/apt-key-standin/pubring.kbx"
REGISTRY_HOSTS = "/etc/containerd/certs.d/registry.k8s.io/hosts.toml"
# Upstream's providers role enables `cloud-init.service`, which cloud-init 24.3 renamed to
# cloud-init-network.service (Debian 13 has only the new name; Ubuntu's stable releases keep the
# old one): a no-op unit of the old name lets the task run; the recipe enables the new name.
CLOUD_INIT_UNIT = "/etc/systemd/system/cloud-init.service"
CLOUD_INIT_STANDIN = (
    "[Unit]\nDescription=STANDIN cloud-init.service (make parity: renamed cloud-init-network.service in 24.3)\n\n"
    "[Service]\nType=oneshot\nExecStart=/bin/true\n\n[Install]\nWantedBy=multi-user.target\n"
)
# The commands upstream's apt_key module runs: list keys, add one from a file or stdin.
APT_KEY_SCRIPT = f"""#!/bin/bash
# STANDIN apt-key (make parity): Debian 13's apt has no apt-key; upstream's apt_key task needs it.
set -euo pipefail
ring=${{APT_KEY_RING:-{APT_KEY_RING}}} box=${{APT_KEY_BOX:-{APT_KEY_BOX}}}
gpgbox() {{ gpg --batch --no-default-keyring --keyring "$box" "$@"; }}
case "$1" in
  adv) shift; gpgbox "$@" 2>/dev/null || true;;
  add) install -d -m 0700 "$(dirname "$box")"; install -d -m 0755 "$(dirname "$ring")"
       if [ "$2" = - ]; then src=$(mktemp); cat > "$src"; else src=$2; fi
       gpgbox --import "$src"
       gpgbox --export > "$ring.tmp" && chmod 0644 "$ring.tmp" && mv "$ring.tmp" "$ring";;
  *) echo "apt-key stand-in: $* is not supported" >&2; exit 1;;
esac
"""


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


def registry_hosts(registry_mirror: str) -> str:
    """containerd's hosts.toml sending registry.k8s.io pulls to localcloud's registry (the
    parity run's own text: a test-bed route, ignored in the comparison)."""
    return (
        'server = "https://registry.k8s.io"\n\n'
        f'[host."{registry_mirror}/v2/proxy-registry.k8s.io"]\n'
        '  capabilities = ["pull", "resolve"]\n  override_path = true\n'
    )


def write_extras(dest: Path, registry_mirror: str) -> None:
    """What upstream's run needs beyond localcloud's mirror: the stand-in apt repository and the
    stand-in role (apt-key, the registry route)."""
    standin_repo(dest / "standins")
    role = dest / "roles" / PRE_ROLE
    (role / "files").mkdir(parents=True, exist_ok=True)
    (role / "tasks").mkdir(parents=True, exist_ok=True)
    (role / "files" / "apt-key").write_text(APT_KEY_SCRIPT)
    (role / "files" / "hosts.toml").write_text(registry_hosts(registry_mirror))
    (role / "files" / "cloud-init.service").write_text(CLOUD_INIT_STANDIN)
    (role / "tasks" / "main.yml").write_text(
        "- name: STANDIN apt-key (Debian 13 has none; upstream's apt_key task runs it)\n"
        f"  ansible.builtin.copy: {{src: apt-key, dest: {APT_KEY}, mode: '0755'}}\n"
        "- name: STANDIN route registry.k8s.io pulls to localcloud's registry (the test bed has no internet)\n"
        f"  ansible.builtin.file: {{path: {REGISTRY_HOSTS.rsplit('/', 1)[0]}, state: directory, mode: '0755'}}\n"
        "- name: STANDIN route registry.k8s.io pulls to localcloud's registry (its hosts.toml)\n"
        f"  ansible.builtin.copy: {{src: hosts.toml, dest: {REGISTRY_HOSTS}, mode: '0644'}}\n"
        "- name: STANDIN cloud-init.service, the name upstream's providers role enables (24.3 renamed it)\n"
        f"  ansible.builtin.copy: {{src: cloud-init.service, dest: {CLOUD_INIT_UNIT}, mode: '0644'}}\n"
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
    apt_repo = f"{mirror}/pkgs/core:/stable:/{v['kubernetes_series']}/deb/"
    extra: dict[str, Any] = {
        "packer_build_name": "hcloud",
        "packer_builder_type": "hcloud",
        "packer_http_addr": "",
        "containerd_url": f"{mirror}/containerd/v{v['containerd_version']}/containerd-{v['containerd_version']}-linux-amd64.tar.gz",
        "containerd_runc_url": f"{mirror}/runc/v{v['runc_version']}/runc.amd64",
        "containerd_runc_checksum_url": f"{mirror}/runc/v{v['runc_version']}/runc.sha256sum",
        "crictl_url": f"{mirror}/crictl/v{v['crictl_version']}/crictl-v{v['crictl_version']}-linux-amd64.tar.gz",
        "kubernetes_cni_http_source": f"{mirror}/cni",
        "kubernetes_http_source": f"{mirror}/k8s",
        # containerd's own unit of that release, as the mirror serves it (from Debian's package)
        "containerd_service_url": f"{mirror}/containerd/v{v['containerd_version']}/containerd.service",
        "kubernetes_deb_repo": apt_repo,
        "kubernetes_deb_gpg_key": f"{apt_repo}Release.key",
        # Debian has no linux-{cloud-,}tools-virtual (Ubuntu-only metapackages).
        "common_virt_debs": ["open-vm-tools"],
        "extra_repos": str(extras_dir / "standins.list"),
        "remove_extra_repos": True,
        "node_custom_roles_pre": PRE_ROLE,
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
