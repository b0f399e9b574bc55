"""The cache of bootable system images: one directory each, with ``image.json`` beside the disk.

Layout: ``<cache>/images/<name>-<arch>/{disk.img, image.json[, vmlinuz, initrd.img]}``. With a
kernel and initrd the image is booted directly (``-kernel``); without, from its own bootloader
(e.g. the official Ubuntu cloud image, a qcow2 with partitions and GRUB).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from .machines.base import SystemImage


class ImageStore:
    def __init__(self, cache_dir: Path) -> None:
        self.root = cache_dir / "images"

    def list(self) -> list[SystemImage]:
        out: list[SystemImage] = []
        if not self.root.exists():
            return out
        for meta_file in sorted(self.root.glob("*/image.json")):
            d = meta_file.parent
            meta = json.loads(meta_file.read_text())
            disk = next((p for p in (d / "disk.img", d / "disk.qcow2") if p.exists()), None)
            if disk is None:
                continue
            kernel = d / "vmlinuz"
            initrd = d / "initrd.img"
            out.append(
                SystemImage(
                    name=meta["name"],
                    architecture=meta.get("architecture", "x86"),
                    os_flavor=meta.get("os_flavor", "unknown"),
                    os_version=meta.get("os_version", ""),
                    description=meta.get("description", meta["name"]),
                    disk_size=float(meta.get("disk_size", 5)),
                    disk_path=disk,
                    kernel_path=kernel if kernel.exists() else None,
                    initrd_path=initrd if initrd.exists() and kernel.exists() else None,
                )
            )
        return out

    def register(
        self,
        name: str,
        disk: Path,
        *,
        architecture: str = "x86",
        os_flavor: str = "unknown",
        os_version: str = "",
        description: str | None = None,
        kernel: Path | None = None,
        initrd: Path | None = None,
    ) -> Path:
        """Copy a user-provided disk (raw or qcow2) in as system image ``name``."""
        fmt = json.loads(
            subprocess.run(
                ["qemu-img", "info", "--output=json", str(disk)], check=True, capture_output=True, text=True
            ).stdout
        )["format"]
        target = self.root / f"{name}-{architecture}"
        target.mkdir(parents=True, exist_ok=True)
        dest = target / ("disk.qcow2" if fmt == "qcow2" else "disk.img")
        shutil.copy(disk, dest)
        if kernel and initrd:
            shutil.copy(kernel, target / "vmlinuz")
            shutil.copy(initrd, target / "initrd.img")
        (target / "image.json").write_text(
            json.dumps(
                {
                    "name": name,
                    "architecture": architecture,
                    "os_flavor": os_flavor,
                    "os_version": os_version,
                    "description": description or name,
                },
                indent=1,
            )
        )
        return target
