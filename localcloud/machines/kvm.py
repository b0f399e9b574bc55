"""Whether KVM works here: probed by booting a kernel, cached per host boot. QEMU falls back to
TCG (software emulation) when it does not."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

_KVM_OK = re.compile(r"Kernel panic|VFS: Unable to mount root|Run /init")
_KVM_BROKEN = re.compile(r"KVM internal error|emulation failure|failed to initialize kvm|Could not access KVM", re.I)


def probe_kvm(kernel: Path, timeout: float = 30.0) -> bool:
    """True only if a KVM guest demonstrably gets through early boot.

    Nested virtualisation under PVM accepts ``-accel kvm`` and then dies mid-boot with "KVM
    internal error … emulation failure" (or hangs silently), so /dev/kvm existing proves nothing.
    """
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    cmd = [
        "qemu-system-x86_64", "-accel", "kvm", "-cpu", "host", "-m", "256", "-display", "none",
        "-monitor", "none", "-serial", "stdio", "-no-reboot", "-kernel", str(kernel),
        "-append", "console=ttyS0 panic=-1",
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, errors="replace")
        text = proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as e:
        text = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
    return bool(_KVM_OK.search(text)) and not _KVM_BROKEN.search(text)


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def cached_probe_kvm(kernel: Path, cache_dir: Path) -> bool:
    """``probe_kvm`` once per host boot: a broken KVM costs the probe its whole timeout, and
    every localcloud start (each test, each ``make image``) would pay it again. Whether KVM
    works is a property of this boot of this host and this QEMU, so that is the cache key — not
    the kernel probed with: keyed on it, a server booted from a snapshot (its own kernel) made
    the next base-image boot probe again, 30 s added to whichever server came first."""
    qemu = shutil.which("qemu-system-x86_64") or ""
    key = {"boot_id": _boot_id(), "qemu": qemu, "qemu_mtime": os.stat(qemu).st_mtime if qemu else 0}
    path = cache_dir / "kvm-probe.json"
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        cached = json.loads(path.read_text())
        if key["boot_id"] and cached["key"] == key:
            return bool(cached["kvm"])
    ok = probe_kvm(kernel)
    with contextlib.suppress(OSError):
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"key": key, "kvm": ok}))
        tmp.replace(path)
    return ok
