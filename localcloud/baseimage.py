"""``make base-image``: a Debian 12 cloud image built with mmdebstrap, registered as ``debian-12``.

What goes in and why (see the project's local-vm notes): ``dbus`` so logind honours the ACPI
power button (API ``shutdown``); ``locales`` with en_US.UTF-8 so cloud-init's locale module
succeeds; a cloud-init drop-in allowing root logins with the API's SSH keys, as Hetzner's images
do; no partition table and no bootloader: QEMU boots the image's own kernel directly.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from .imagestore import ImageStore

PACKAGES = [
    "linux-image-cloud-amd64",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "cloud-init",
    "cloud-guest-utils",
    "ifupdown",
    "isc-dhcp-client",
    "sudo",
    "ca-certificates",
    "curl",
    "iproute2",
    "udev",
    "kmod",
    "locales",
]

CLOUD_CFG = """\
# localcloud: behave like Hetzner's images, where the API's SSH keys log in as root.
disable_root: false
manage_etc_hosts: true
datasource_list: [NoCloud, None]
"""

INITRAMFS_MODULES = "".join(f"{m}\\n" for m in ("virtio_pci", "virtio_blk", "virtio_net", "ext4"))
FSTAB = "LABEL=root / ext4 defaults,discard,errors=remount-ro 0 1\n"

# Bumped whenever the recipe below changes, so a cached image is rebuilt.
BASE_IMAGE_VERSION = 3
# mkfs would give a 4 GiB filesystem a 64 MiB journal; a build's writes cycle through all of
# it and every journal block ends up in the snapshot. 16 MiB keeps snapshots close to the data.
JOURNAL_MB = 16


def _hooks() -> list[str]:
    cfg = CLOUD_CFG.replace("\n", "\\n")
    return [
        'echo "en_US.UTF-8 UTF-8" > "$1/etc/locale.gen" && chroot "$1" locale-gen',
        f'printf "{cfg}" > "$1/etc/cloud/cloud.cfg.d/90-localcloud.cfg"',
        f'printf "{FSTAB.strip()}\\n" > "$1/etc/fstab"',
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


def build_debian12(store: ImageStore, *, mirror: str | None = None, size_gb: int = 4, force: bool = False) -> Path:
    """Build (or keep) the ``debian-12`` x86 base image; return its directory."""
    target = store.root / "debian-12-x86"
    meta = target / "image.json"
    if meta.exists() and not force and json.loads(meta.read_text()).get("base_image_version") == BASE_IMAGE_VERSION:
        return target
    for tool in ("mmdebstrap", "mkfs.ext4"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is missing: apt-get install mmdebstrap e2fsprogs")
    store.root.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(dir=store.root, prefix=".build-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        cmd = ["mmdebstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}"]
        cmd += [f"--customize-hook={h}" for h in _hooks()]
        cmd += ["bookworm", str(rootfs)]
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
                    "name": "debian-12",
                    "architecture": "x86",
                    "os_flavor": "debian",
                    "os_version": "12",
                    "description": "Debian 12 (localcloud base image)",
                    "kernel_version": version,
                    "base_image_version": BASE_IMAGE_VERSION,
                    "built_seconds": round(time.monotonic() - t0, 1),
                },
                indent=1,
            )
        )
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    return target
