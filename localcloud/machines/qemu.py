"""Servers as real QEMU VMs.

Each server: a qcow2 overlay over its image (virtual size = the server type's disk, attached
with discard so a guest ``fstrim`` frees blocks), a cloud-init NoCloud seed ISO, user-mode
networking with SSH forwarded from the server's 127.0.0.N:22, and a QMP socket for the ACPI
power button. Every QEMU process is tied to localcloud's life (PR_SET_PDEATHSIG), so none
outlives it even on SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import re
import shutil
import signal
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qemu.qmp import QMPClient

from ..cloudinit import NETWORK_CONFIG, meta_data
from ..imagestore import ImageStore
from ..models import Image, Server
from .base import PowerOffCallback, SnapshotResult, SystemImage
from .kvm import cached_probe_kvm

log = logging.getLogger("localcloud.qemu")

_PR_SET_PDEATHSIG = 1
CONSOLES_KEPT = 100  # serial console logs of deleted servers kept in <state>/consoles


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    os.setsid()


async def _run(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{args[0]} failed ({proc.returncode}): {err.decode(errors='replace').strip()}")
    return out.decode(errors="replace")


@dataclass
class _VM:
    server_id: int
    dir: Path
    disk: Path
    seed: Path
    qmp_path: Path
    console: Path
    ip: str
    kernel: Path | None
    initrd: Path | None
    proc: asyncio.subprocess.Process | None = None
    watcher: asyncio.Task[None] | None = None
    expected_exit: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class QemuDriver:
    kind = "qemu"

    def __init__(
        self,
        *,
        state_dir: Path,
        cache_dir: Path,
        accel: str = "auto",
        memory_mb: int = 2048,
        cpus: int = 2,
    ) -> None:
        self.state_dir = state_dir
        self.cache_dir = cache_dir
        self.store = ImageStore(cache_dir)
        self.accel_choice = accel
        self.memory_mb = memory_mb
        self.cpus = cpus
        self.vms: dict[int, _VM] = {}
        self._accel: str | None = None
        self._accel_lock = asyncio.Lock()
        self._power_off_cb: PowerOffCallback = lambda _sid: None
        for tool in ("qemu-system-x86_64", "qemu-img", "genisoimage"):
            if shutil.which(tool) is None:
                raise RuntimeError(f"{tool} is missing: apt-get install qemu-system-x86 qemu-utils genisoimage")
        (state_dir / "servers").mkdir(parents=True, exist_ok=True)
        (state_dir / "images").mkdir(parents=True, exist_ok=True)
        # Servers do not survive a localcloud restart: whatever a killed run left is garbage,
        # except its serial console, which may be the only record of why it went wrong.
        for leftover in (state_dir / "servers").iterdir():
            if leftover.name.isdigit():
                self._keep_console(int(leftover.name), leftover / "console.log")
            shutil.rmtree(leftover, ignore_errors=True)

    # ------------------------------------------------------------------ catalog
    def system_images(self) -> list[SystemImage]:
        return self.store.list()

    def set_power_off_callback(self, cb: PowerOffCallback) -> None:
        self._power_off_cb = cb

    def describe(self) -> dict[str, Any]:
        return {
            str(vm.server_id): {
                "kind": self.kind,
                "ip": vm.ip,
                "pid": vm.proc.pid if vm.proc and vm.proc.returncode is None else None,
                "dir": str(vm.dir),
                "accel": self._accel,
            }
            for vm in self.vms.values()
        }

    async def accel(self, kernel: Path | None) -> str:
        async with self._accel_lock:
            if self._accel is None:
                if self.accel_choice in ("kvm", "tcg"):
                    self._accel = self.accel_choice
                elif kernel is None:
                    self._accel = "tcg"
                else:
                    # Off the event loop: the API keeps answering while a broken KVM times out.
                    kvm = await asyncio.to_thread(cached_probe_kvm, kernel, self.cache_dir)
                    self._accel = "kvm" if kvm else "tcg"
                log.info("qemu acceleration: %s", self._accel)
            return self._accel

    # ------------------------------------------------------------------ consoles
    @property
    def consoles_dir(self) -> Path:
        return self.state_dir / "consoles"

    def _keep_console(self, server_id: int, console: Path) -> None:
        """Move a server's serial console log to ``consoles/<id>.log``: a deleted server's boot
        log is how a boot that never reached SSH gets explained. The newest ones are kept."""
        if not console.exists():
            return
        self.consoles_dir.mkdir(parents=True, exist_ok=True)
        shutil.move(console, self.consoles_dir / f"{server_id}.log")
        kept = sorted(self.consoles_dir.glob("*.log"), key=lambda p: p.stat().st_mtime)
        for old in kept[:-CONSOLES_KEPT]:
            old.unlink(missing_ok=True)

    def console_log(self, server_id: int) -> Path | None:
        """The serial console of a server, running or deleted (None if there is none)."""
        vm = self.vms.get(server_id)
        if vm is not None and vm.console.exists():
            return vm.console
        kept = self.consoles_dir / f"{server_id}.log"
        return kept if kept.exists() else None

    # ------------------------------------------------------------------ lifecycle
    async def create(self, server: Server, image: Image) -> None:
        if image.disk_path is None or not image.disk_path.exists():
            raise RuntimeError(f"image {image.id} has no disk on this localcloud")
        d = self.state_dir / "servers" / str(server.id)
        d.mkdir(parents=True, exist_ok=True)
        disk = d / "disk.qcow2"
        fmt = "qcow2" if image.disk_path.suffix == ".qcow2" else "raw"
        await _run(
            "qemu-img", "create", "-q", "-f", "qcow2", "-b", str(image.disk_path.resolve()), "-F", fmt,
            # Small clusters: a guest discard (fstrim) frees 4 KiB blocks, not whole 64 KiB
            # clusters that still hold a few live bytes, so snapshots carry no dead data.
            "-o", "cluster_size=4096",
            str(disk), f"{server.server_type.disk}G",
        )  # fmt: skip
        seed_dir = d / "seed"
        seed_dir.mkdir(exist_ok=True)
        (seed_dir / "meta-data").write_text(meta_data(server.id, server.name, server.ssh_keys))
        (seed_dir / "user-data").write_text(server.user_data or "")
        (seed_dir / "network-config").write_text(NETWORK_CONFIG)
        seed = d / "seed.iso"
        await _run(
            "genisoimage", "-quiet", "-output", str(seed), "-volid", "cidata", "-joliet", "-rock",
            str(seed_dir / "user-data"), str(seed_dir / "meta-data"), str(seed_dir / "network-config"),
        )  # fmt: skip
        self.vms[server.id] = _VM(
            server.id,
            d,
            disk,
            seed,
            d / "qmp.sock",
            d / "console.log",
            server.ipv4,
            image.kernel_path,
            image.initrd_path,
        )

    def _command(self, vm: _VM, accel: str) -> list[str]:
        cmd = [
            "qemu-system-x86_64", "-name", f"localcloud-{vm.server_id}",
            "-accel", "kvm" if accel == "kvm" else "tcg,thread=multi",
            "-cpu", "host" if accel == "kvm" else "max",
            "-smp", str(self.cpus), "-m", str(self.memory_mb),
            "-display", "none", "-monitor", "none", "-serial", f"file:{vm.console}",
            "-qmp", f"unix:{vm.qmp_path},server=on,wait=off",
            # no-flush: guest flushes (dpkg fsyncs after every package) still write QEMU's
            # qcow2 metadata into the file, but skip the host fdatasync, which made apt
            # I/O-bound on slow disks. These disks are scratch: a host crash ends the VM anyway.
            "-blockdev", f"driver=file,filename={vm.disk},node-name=f0,discard=unmap,cache.no-flush=on",
            "-blockdev", "driver=qcow2,file=f0,node-name=q0,discard=unmap",
            "-device", "virtio-blk-pci,drive=q0,discard=on",
            "-drive", f"file={vm.seed},format=raw,if=virtio,readonly=on",
            "-netdev", f"user,id=n0,hostfwd=tcp:{vm.ip}:22-:22",
            "-device", "virtio-net-pci,netdev=n0",
        ]  # fmt: skip
        if vm.kernel is not None and vm.initrd is not None:
            cmd += ["-kernel", str(vm.kernel), "-initrd", str(vm.initrd)]
            cmd += ["-append", "root=/dev/vda rw console=ttyS0 net.ifnames=0"]
        return cmd

    async def start(self, server: Server) -> None:
        vm = self.vms[server.id]
        if vm.proc is not None and vm.proc.returncode is None:
            return
        accel = await self.accel(vm.kernel)
        vm.qmp_path.unlink(missing_ok=True)
        vm.expected_exit = False
        stderr = open(vm.dir / "qemu.stderr", "ab")  # noqa: SIM115 - handed to the child
        try:
            vm.proc = await asyncio.create_subprocess_exec(
                *self._command(vm, accel), stdin=asyncio.subprocess.DEVNULL, stdout=stderr, stderr=stderr,
                preexec_fn=_die_with_parent,
            )  # fmt: skip
        finally:
            stderr.close()
        for _ in range(200):  # powered on once QMP answers
            if vm.qmp_path.exists() or vm.proc.returncode is not None:
                break
            await asyncio.sleep(0.05)
        if vm.proc.returncode is not None or not vm.qmp_path.exists():
            err = (vm.dir / "qemu.stderr").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"qemu did not start: {err.strip()}")
        vm.watcher = asyncio.get_running_loop().create_task(self._watch(vm))

    async def _watch(self, vm: _VM) -> None:
        assert vm.proc is not None
        await vm.proc.wait()
        if not vm.expected_exit:
            log.info("server %s powered off (qemu exited %s)", vm.server_id, vm.proc.returncode)
            self._power_off_cb(vm.server_id)

    async def _qmp(self, vm: _VM, command: str) -> None:
        qmp = QMPClient(f"localcloud-{vm.server_id}")
        await qmp.connect(str(vm.qmp_path))
        try:
            await qmp.execute(command)
        finally:
            await qmp.disconnect()

    async def acpi_shutdown(self, server: Server) -> None:
        vm = self.vms[server.id]
        if vm.proc is not None and vm.proc.returncode is None:
            await self._qmp(vm, "system_powerdown")

    async def _stop(self, vm: _VM, grace: float = 5.0) -> None:
        if vm.proc is None or vm.proc.returncode is not None:
            return
        vm.expected_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._qmp(vm, "quit"), grace)
        try:
            await asyncio.wait_for(vm.proc.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                vm.proc.kill()
            await vm.proc.wait()

    async def poweroff(self, server: Server) -> None:
        await self._stop(self.vms[server.id])

    async def reset(self, server: Server) -> None:
        vm = self.vms[server.id]
        if vm.proc is not None and vm.proc.returncode is None:
            await self._qmp(vm, "system_reset")

    async def snapshot(self, server: Server, image_id: int) -> SnapshotResult:
        vm = self.vms[server.id]
        out_dir = self.state_dir / "images" / str(image_id)
        out_dir.mkdir(parents=True, exist_ok=True)
        disk = out_dir / "disk.img"
        # Raw and sparse: allocated blocks are the real data size, and debugfs can read the
        # new kernel out of it (a snapshot may carry an upgraded kernel).
        # -U: a running server's disk is open read-write by QEMU; the copy is crash-consistent.
        await _run("qemu-img", "convert", "-U", "-O", "raw", str(vm.disk), str(disk))
        kernel, initrd = await _extract_kernel(disk, out_dir)
        size = disk.stat().st_blocks * 512
        (out_dir / "snapshot.json").write_text(json.dumps({"server": server.id, "allocated_bytes": size}))
        return SnapshotResult(round(size / 1024**3, 3), disk, kernel or vm.kernel, initrd or vm.initrd)

    async def delete_image(self, image: Image) -> None:
        if image.disk_path is not None and (self.state_dir / "images") in image.disk_path.parents:
            shutil.rmtree(image.disk_path.parent, ignore_errors=True)

    async def delete(self, server: Server) -> None:
        vm = self.vms.pop(server.id, None)
        if vm is None:
            shutil.rmtree(self.state_dir / "servers" / str(server.id), ignore_errors=True)
            return
        await self._stop(vm, grace=2.0)
        if vm.watcher is not None:
            vm.watcher.cancel()
        self._keep_console(vm.server_id, vm.console)
        shutil.rmtree(vm.dir, ignore_errors=True)

    async def close(self) -> None:
        for vm in list(self.vms.values()):
            await self._stop(vm, grace=2.0)
            self._keep_console(vm.server_id, vm.console)
            shutil.rmtree(vm.dir, ignore_errors=True)
        self.vms.clear()


async def _extract_kernel(disk: Path, out_dir: Path) -> tuple[Path | None, Path | None]:
    """Copy the newest /boot/vmlinuz-* and its initrd out of an ext4 root filesystem image."""
    if shutil.which("debugfs") is None:
        return None, None
    try:
        listing = await _run("debugfs", "-R", "ls -p /boot", str(disk))
    except RuntimeError:
        return None, None  # not a bare ext4 root (e.g. a partitioned image with a bootloader)
    names = [f.split("/")[5] for f in listing.splitlines() if f.count("/") >= 6]
    versions = [n.removeprefix("vmlinuz-") for n in names if n.startswith("vmlinuz-")]
    versions = [v for v in versions if f"initrd.img-{v}" in names]
    if not versions:
        return None, None
    newest = max(versions, key=_version_key)
    kernel, initrd = out_dir / "vmlinuz", out_dir / "initrd.img"
    with tempfile.TemporaryDirectory() as tmp:
        for src, dst in ((f"/boot/vmlinuz-{newest}", kernel), (f"/boot/initrd.img-{newest}", initrd)):
            tmp_out = Path(tmp) / dst.name
            await _run("debugfs", "-R", f"dump {src} {tmp_out}", str(disk))
            shutil.move(tmp_out, dst)
    return kernel, initrd


def _version_key(v: str) -> list[tuple[int, int | str]]:
    return [(0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.-]", v)]
