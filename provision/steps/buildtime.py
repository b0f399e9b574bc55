"""Settings that make provisioning fast and never reach the image: ``enter`` is the first thing
setup does, ``leave`` the first thing sysprep does (so sysprep and verify see the final
system). Each setting here is one line in ``BUILD_ONLY_PATHS``, which verify and the boot test
check are gone.

- dpkg without fsync (``force-unsafe-io``): the build server is thrown away if anything fails,
  and sysprep ends with ``sync`` before the shutdown that precedes the snapshot.
- no Translation files from ``apt-get update``: sysprep deletes the package lists anyway.
- initramfs generation deferred: package hooks and dpkg triggers (lvm2, open-iscsi, busybox,
  a new kernel) each rebuild the initramfs — three times a build, at 1-5 minutes each on a slow
  disk. ``update-initramfs`` is diverted to a stand-in that records what was asked; ``leave``
  restores it and carries the requests out once, with the final configuration, compressed with
  the compressor the OS's initramfs.conf names (zstd on Ubuntu and Debian 13; installed for the
  one run and purged again when the base image lacks it, so the package set is unchanged).
"""

from __future__ import annotations

from ..plan import Check, Put, Run

STATE_DIR = "/var/lib/capi-image-build"
REQUESTS = f"{STATE_DIR}/initramfs-requests"
UPDATE_INITRAMFS = "/usr/sbin/update-initramfs"
DIVERTED = f"{UPDATE_INITRAMFS}.capi-image-build"
DPKG_CFG = "/etc/dpkg/dpkg.cfg.d/capi-image-build"
APT_CFG = "/etc/apt/apt.conf.d/99capi-image-build"
# Every path that exists only while the build runs (verify: none of them is left).
BUILD_ONLY_PATHS = (DPKG_CFG, APT_CFG, STATE_DIR, DIVERTED)

DEFERRED_UPDATE_INITRAMFS = f"""#!/bin/sh
# capi-image build only (removed before the snapshot): initramfs generation is deferred to one
# run at the end of provisioning. Deleting an initramfs (kernel removal) is done at once.
set -e
case " $* " in *" -d "*) exec {DIVERTED} "$@" ;; esac
mkdir -p {STATE_DIR}
echo "$*" >> {REQUESTS}
echo "update-initramfs: deferred to the end of the build ($*)"
"""

# Requests replayed once: each kernel created during the build (-c, from the kernel's postinst
# hook) is generated now, with the final configuration, which also covers any -u; a -u alone
# (a hook or trigger of a package) updates the newest kernel's, as the trigger would have.
GENERATE_ONCE = f"""\
f={REQUESTS}
[ -s $f ] || {{ echo 'initramfs: nothing asked for a new one during the build'; exit 0; }}
compress=$( (cat /etc/initramfs-tools/initramfs.conf /etc/initramfs-tools/conf.d/* 2>/dev/null || true) | sed -n 's/^COMPRESS=//p' | tail -n1)
added=
if [ "$compress" = zstd ] && ! command -v zstd >/dev/null; then
  apt-get -y --no-install-recommends install zstd && added=zstd
fi
if grep -qE -- '(^| )-c( |$)' $f; then
  grep -E -- '(^| )-c( |$)' $f | sort -u | while read -r args; do update-initramfs $args; done
else
  update-initramfs -u
fi
if [ -n "$added" ]; then apt-get -y purge "$added" && rm -f /var/cache/apt/archives/"$added"_*.deb; fi
"""


def enter() -> tuple[Put | Run, ...]:
    return (
        Put(DPKG_CFG, b"# capi-image build only: no fsync per file (sysprep syncs once)\nforce-unsafe-io\n"),
        Put(APT_CFG, b'// capi-image build only: no Translation files\nAcquire::Languages "none";\n'),
        Run(
            f"dpkg-divert --local --rename --divert {DIVERTED} --add {UPDATE_INITRAMFS} >/dev/null && rm -f {REQUESTS}"
        ),
        Put(UPDATE_INITRAMFS, DEFERRED_UPDATE_INITRAMFS.encode(), 0o755),
    )


def leave() -> tuple[Run, ...]:
    return (
        Run(
            f"rm -f {UPDATE_INITRAMFS} && dpkg-divert --local --rename --divert {DIVERTED} --remove {UPDATE_INITRAMFS} >/dev/null"
        ),
        Run(GENERATE_ONCE, env={"DEBIAN_FRONTEND": "noninteractive"}, kind="initramfs"),
        Run(f"rm -rf {DPKG_CFG} {APT_CFG} {STATE_DIR}"),
    )


def gone_checks(prefix: str) -> list[Check]:
    """What verify and the boot test check: no build-time setting survived, and every kernel
    has its initramfs (the deferred generation happened)."""
    return [
        Check(f"{prefix}no build-time settings", f"ls -d {' '.join(BUILD_ONLY_PATHS)} 2>/dev/null || true", "empty"),
        Check(
            f"{prefix}update-initramfs not diverted",
            f"dpkg-divert --list {UPDATE_INITRAMFS}; grep -c 'deferred to the end of the build' {UPDATE_INITRAMFS} || true",
            "equals",
            "0",
        ),
        Check(
            f"{prefix}an initramfs for every kernel",
            "for k in /boot/vmlinuz-*; do v=${k#/boot/vmlinuz-}; test -s /boot/initrd.img-$v || echo $v; done",
            "empty",
        ),
    ]
