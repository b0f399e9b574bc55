"""Build-time settings (provision/steps/buildtime.py): what setup adds for speed, sysprep takes
away before verify, and the deferred initramfs requests replayed once. The replay script runs
here for real, with stand-in ``update-initramfs`` and ``apt-get`` commands that record calls."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from provision.bootcheck import boot_checks
from provision.plan import Put, Run
from provision.profiles import PROFILES
from provision.recipe import build_plan
from provision.steps import buildtime

from .recipes import MATRIX, ctx


@pytest.mark.parametrize(("profile", "arch"), MATRIX)
def test_every_build_time_setting_is_added_first_and_removed_before_sysprep_cleans(profile: str, arch: str) -> None:
    plan = build_plan(ctx(profile, arch))
    setup, sysprep = plan.step("setup"), plan.step("sysprep")
    enter, leave = buildtime.enter(), buildtime.leave()
    assert setup.operations[: len(enter)] == enter
    assert sysprep.operations[: len(leave)] == leave
    # Every file setup adds is removed by leave (or is the diverted command, restored by it).
    added = [op.path for op in enter if isinstance(op, Put)]
    removal = " ".join(op.command for op in leave)
    for path in added:
        assert path == buildtime.UPDATE_INITRAMFS or path in buildtime.BUILD_ONLY_PATHS, path
        assert path in removal, f"{path} is never removed"
    assert f"--remove {buildtime.UPDATE_INITRAMFS}" in removal
    assert "sync" in sysprep.commands()[-1]  # unsafe-io's writes reach the disk before shutdown
    # Verify (after sysprep) and the boot test both check none of it survived.
    verify_names = [c.name for c in plan.step("verify").checks()]
    assert "hygiene no build-time settings" in verify_names
    assert "hygiene update-initramfs not diverted" in verify_names
    boot = boot_checks(ctx(profile, arch), "full", build_machine_id="m", build_instance_id="i", host_key_blob="k")
    assert {"boot no build-time settings", "boot an initramfs for every kernel"} <= {c.name for c in boot}


def test_one_command_generates_the_initramfs() -> None:
    for profile in PROFILES:
        plan = build_plan(ctx(profile))
        runs = [op for s in plan.steps for op in s.operations if isinstance(op, Run)]
        generating = [op for op in runs if "update-initramfs -u" in op.command or "mkinitramfs" in op.command]
        assert generating == [buildtime.leave()[1]]
        assert [op for op in runs if op.kind == "initramfs"] == generating


def test_kinds_mark_where_the_time_goes() -> None:
    plan = build_plan(ctx("ubuntu-2404"))
    kinds = {op.kind for s in plan.steps for op in s.operations if isinstance(op, Run)}
    assert {"apt", "download", "initramfs"} <= kinds
    for s in plan.steps:
        for op in s.operations:
            if isinstance(op, Run) and op.command.startswith("apt-get -y"):
                assert op.kind == "apt", op.command
    with pytest.raises(ValueError, match="unknown kind"):
        Run("true", kind="disk")


def _replay(tmp_path: Path, requests: list[str], *, compress: str = "zstd", zstd_present: bool = False) -> list[str]:
    """Run leave()'s replay script against a temporary root with recording stand-ins."""
    root = tmp_path / "root"
    (root / "etc/initramfs-tools/conf.d").mkdir(parents=True)
    (root / "cache").mkdir()
    (root / "cache" / "zstd_1.5.7_amd64.deb").write_bytes(b"deb")
    (root / "etc/initramfs-tools/initramfs.conf").write_text(f"MODULES=most\nCOMPRESS={compress}\n")
    state = root / "state"
    state.mkdir()
    if requests:
        (state / "initramfs-requests").write_text("".join(f"{r}\n" for r in requests))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    for name in ("update-initramfs", "apt-get", *(["zstd"] if zstd_present else [])):
        stand_in = bin_dir / name
        stand_in.write_text(f'#!/bin/sh\necho "{name} $*" >> {calls}\n')
        stand_in.chmod(0o755)
    script = (
        buildtime.GENERATE_ONCE.replace(buildtime.STATE_DIR, str(state))
        .replace("/etc/initramfs-tools", str(root / "etc/initramfs-tools"))
        .replace("/var/cache/apt/archives", str(root / "cache"))  # never the host's
    )
    assert "/var/" not in script.replace(str(tmp_path), "")
    # Only the stand-ins and the basic tools the script uses (no host zstd leaks in).
    tools = tmp_path / "tools"
    tools.mkdir()
    for tool in ("cat", "sed", "tail", "grep", "sort", "rm"):
        found = next(Path(d) / tool for d in ("/usr/bin", "/bin") if (Path(d) / tool).exists())
        (tools / tool).symlink_to(found)
    env = {**os.environ, "PATH": f"{bin_dir}:{tools}"}
    subprocess.run(["/bin/bash", "--norc", "-euo", "pipefail", "-c", script], check=True, env=env)
    return calls.read_text().splitlines() if calls.exists() else []


def test_replay_creates_each_new_kernel_once_which_covers_every_update(tmp_path: Path) -> None:
    calls = _replay(
        tmp_path,
        ["-u", "-c -k 6.12.118+deb13-cloud-amd64", "-u", "-c -k 6.12.118+deb13-cloud-amd64", "-u"],
        zstd_present=True,
    )
    assert calls == ["update-initramfs -c -k 6.12.118+deb13-cloud-amd64"]


def test_replay_of_updates_alone_is_one_update_and_kernel_names_are_not_create_flags(tmp_path: Path) -> None:
    # "-cloud" in a kernel version must not read as -c.
    calls = _replay(tmp_path, ["-u", "-u -k 6.12.118+deb13-cloud-amd64"], zstd_present=True)
    assert calls == ["update-initramfs -u"]


def test_replay_installs_the_os_compressor_for_the_one_run_and_purges_it(tmp_path: Path) -> None:
    calls = _replay(tmp_path, ["-u"], compress="zstd", zstd_present=False)
    assert calls == ["apt-get -y --no-install-recommends install zstd", "update-initramfs -u", "apt-get -y purge zstd"]
    assert not (tmp_path / "root" / "cache" / "zstd_1.5.7_amd64.deb").exists()  # no trace in apt's cache
    assert _replay(tmp_path / "gz", ["-u"], compress="gzip") == ["update-initramfs -u"]


def test_nothing_asked_means_no_generation(tmp_path: Path) -> None:
    assert _replay(tmp_path, []) == []
