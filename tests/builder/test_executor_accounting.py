"""The executor's accounting (builder/ssh.py): counted output lines and each step's record in
the manifest. The SSH side runs in the end-to-end build; this is the pure part."""

from __future__ import annotations

from builder.ssh import StepTiming, _LineLogger


def test_line_logger_counts_initramfs_generations_across_writes() -> None:
    out = _LineLogger("sysprep", "stdout")
    out.write("update-initramfs: Generating /boot/initrd.img-6.12")
    out.write("\nW: No zstd in /usr/bin:/sbin:/bin, using gzip\n")
    out.write("update-initramfs: deferred to the end of the build (-u)\n")  # the stand-in: not one
    out.write("update-initramfs: Generating /boot/initrd.img-6.1\n")
    out.flush()
    assert out.counted == {"initramfs_generations": 2}
    assert _LineLogger("setup", "stdout").counted == {}


def test_step_record_carries_kinds_and_counts() -> None:
    timing = StepTiming("sysprep", 12.5, True, {"initramfs": 7.25, "apt": 1.0}, {"initramfs_generations": 1})
    assert timing.record() == {
        "name": "sysprep",
        "seconds": 12.5,
        "ok": True,
        "by_kind": {"initramfs": 7.25, "apt": 1.0},
        "initramfs_generations": 1,
    }
    assert StepTiming("node", 1.0, True).record() == {"name": "node", "seconds": 1.0, "ok": True, "by_kind": {}}
