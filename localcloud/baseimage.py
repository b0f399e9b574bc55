"""``make base-image``: Debian cloud images built with mmdebstrap, registered as Hetzner names
its system images (``debian-12``, ``debian-13``).

What goes in and why (see the project's local-vm notes): ``dbus`` so logind honours the ACPI
power button (API ``shutdown``); ``locales`` with en_US.UTF-8 so cloud-init's locale module
succeeds; a cloud-init drop-in allowing root logins with the API's SSH keys, as Hetzner's images
do; no partition table and no bootloader: QEMU boots the image's own kernel directly.

The two images differ where production images differ:

- ``debian-12`` is networked like Hetzner's Debian 12: ifupdown + isc-dhcp-client, cloud-init
  22.4 rendering ``/etc/network/interfaces.d/50-cloud-init``.
- ``debian-13`` is networked like Ubuntu's cloud images (the production path's shape):
  netplan.io as cloud-init's renderer, systemd-networkd underneath, systemd-resolved for DNS,
  no ifupdown; cloud-init 25.1 writes ``/etc/netplan/50-cloud-init.yaml``. Hetzner offers
  ``debian-13`` too; Ubuntu cannot be downloaded here, and this is as close as Debian gets.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .imagestore import ImageStore

COMMON_PACKAGES = (
    "linux-image-cloud-amd64",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "cloud-init",
    "cloud-guest-utils",
    "sudo",
    "ca-certificates",
    "curl",
    "iproute2",
    "udev",
    "kmod",
    "locales",
)

CLOUD_CFG = """\
# localcloud: behave like Hetzner's images, where the API's SSH keys log in as root.
disable_root: false
manage_etc_hosts: true
datasource_list: [NoCloud, None]
"""
# Ubuntu's cloud images render the network with netplan (cloud-init picks the first renderer
# that is available; naming it makes the choice visible and keeps eni out for good).
NETPLAN_CFG = """\
# localcloud debian-13: network rendered as on Ubuntu's cloud images (netplan -> systemd-networkd).
system_info:
  network:
    renderers: [netplan]
    activators: [netplan]
"""

INITRAMFS_MODULES = "".join(f"{m}\\n" for m in ("virtio_pci", "virtio_blk", "virtio_net", "ext4"))
FSTAB = "LABEL=root / ext4 defaults,discard,errors=remount-ro 0 1\n"

# mkfs would give a 4 GiB filesystem a 64 MiB journal; a build's writes cycle through all of
# it and every journal block ends up in the snapshot. 16 MiB keeps snapshots close to the data.
JOURNAL_MB = 16


@dataclass(frozen=True)
class BaseImage:
    """One system image localcloud offers, and how mmdebstrap builds it."""

    name: str  # Hetzner's name: debian-12
    suite: str  # bookworm
    os_version: str  # 12
    description: str
    network_packages: tuple[str, ...]
    extra_cloud_cfg: str = ""
    # Bumped whenever the recipe of this image changes, so a cached image is rebuilt.
    version: int = 1

    @property
    def packages(self) -> tuple[str, ...]:
        return (*COMMON_PACKAGES, *self.network_packages)


BASE_IMAGES: dict[str, BaseImage] = {
    b.name: b
    for b in (
        BaseImage(
            "debian-12", "bookworm", "12", "Debian 12", ("ifupdown", "isc-dhcp-client"), version=3,
        ),
        BaseImage(
            "debian-13", "trixie", "13", "Debian 13",
            # netplan.io renders for systemd-networkd; resolved takes the DHCP DNS servers.
            ("netplan.io", "systemd-resolved"),
            extra_cloud_cfg=NETPLAN_CFG,
            version=1,
        ),
    )
}  # fmt: skip
DEFAULT_BASE_IMAGE = "debian-12"


def _printf(path: str, text: str, append: bool = False) -> str:
    body = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'printf "{body}" {">>" if append else ">"} "$1{path}"'


def _hooks(image: BaseImage) -> list[str]:
    return [
        'echo "en_US.UTF-8 UTF-8" > "$1/etc/locale.gen" && chroot "$1" locale-gen',
        _printf("/etc/cloud/cloud.cfg.d/90-localcloud.cfg", CLOUD_CFG + image.extra_cloud_cfg),
        _printf("/etc/fstab", FSTAB),
        # Each instance must get its own identity: cloud-init makes host keys, systemd the id.
        'rm -f "$1"/etc/ssh/ssh_host_* && : > "$1/etc/machine-id"',
        # The initramfs holds only what this VM needs to mount its root (virtio disk, ext4), not
        # Debian's MODULES=most: under TCG every regeneration (open-iscsi and lvm2 in the node
        # recipe trigger one) took 250 s instead of 100 s, and each boot unpacks a 15 MB initrd.
        'printf "MODULES=list\\n" > "$1/etc/initramfs-tools/conf.d/localcloud.conf"',
        f'printf "{INITRAMFS_MODULES}" >> "$1/etc/initramfs-tools/modules"',
        'chroot "$1" update-initramfs -u -k all',
        'chroot "$1" apt-get clean',
    ]


def build_base_image(
    store: ImageStore,
    name: str = DEFAULT_BASE_IMAGE,
    *,
    mirror: str | None = None,
    size_gb: int = 4,
    force: bool = False,
) -> Path:
    """Build (or keep) the x86 system image ``name``; return its directory."""
    try:
        image = BASE_IMAGES[name]
    except KeyError:
        raise ValueError(f"unknown base image '{name}'; known: {', '.join(BASE_IMAGES)}") from None
    target = store.root / f"{image.name}-x86"
    meta = target / "image.json"
    if meta.exists() and not force and json.loads(meta.read_text()).get("base_image_version") == image.version:
        return target
    for tool in ("mmdebstrap", "mkfs.ext4"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is missing: apt-get install mmdebstrap e2fsprogs")
    store.root.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(dir=store.root, prefix=".build-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        cmd = ["mmdebstrap", "--variant=minbase", f"--include={','.join(image.packages)}"]
        cmd += [f"--customize-hook={h}" for h in _hooks(image)]
        cmd += [image.suite, str(rootfs)]
        if mirror:
            cmd.append(mirror)
        subprocess.run(cmd, check=True)
        staging = Path(tmp) / "out"
        staging.mkdir()
        kernels = sorted((rootfs / "boot").glob("vmlinuz-*"))
        if not kernels:
            raise RuntimeError("mmdebstrap produced no kernel")
        version = kernels[-1].name.removeprefix("vmlinuz-")
        shutil.copy(kernels[-1], staging / "vmlinuz")
        shutil.copy(rootfs / "boot" / f"initrd.img-{version}", staging / "initrd.img")
        disk = staging / "disk.img"
        with open(disk, "wb") as f:
            f.truncate(size_gb * 1024**3)
        subprocess.run(
            ["mkfs.ext4", "-q", "-L", "root", "-J", f"size={JOURNAL_MB}", "-d", str(rootfs), str(disk)], check=True
        )
        (staging / "image.json").write_text(
            json.dumps(
                {
                    "name": image.name,
                    "architecture": "x86",
                    "os_flavor": "debian",
                    "os_version": image.os_version,
                    "description": image.description,
                    "kernel_version": version,
                    "base_image_version": image.version,
                    "packages": list(image.packages),
                    "built_seconds": round(time.monotonic() - t0, 1),
                },
                indent=1,
            )
        )
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    return target
