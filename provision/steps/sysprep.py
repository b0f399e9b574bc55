"""Step 8, sysprep (image-builder's sysprep role, in its order): make the disk a template — no
identity, no secrets, no logs, no free blocks."""

from __future__ import annotations

from ..options import RecipeContext
from ..plan import Put, Run, Step
from ..profiles import NETWORK_CONFIG_FILES
from . import buildtime
from .common import APT_ENV, APT_GET
from .setup import APT_UNITS

INSTALLER_LEFTOVERS = (
    "/etc/cloud/cloud.cfg.d/subiquity-disable-cloudinit-networking.cfg",
    "/etc/cloud/cloud.cfg.d/00-subiquity-disable-cloudinit-networking.cfg",
    "/etc/cloud/cloud.cfg.d/99-installer.cfg",
    "/etc/cloud/cloud.cfg.d/curtin-preserve-sources.cfg",
    "/etc/cloud/ds-identify.cfg",
    "/etc/cloud/cloud.cfg.d/90-installer-network.cfg",
)
HOSTS = "127.0.0.1 localhost localhost.local\n::1 localhost ip6-localhost ip6-loopback\n"
GRUB_CFG = (
    "GRUB_RECORDFAIL_TIMEOUT=0\nGRUB_TIMEOUT=0\n"
    'GRUB_CMDLINE_LINUX_DEFAULT="console=tty1 console=ttyS0"\nGRUB_TERMINAL=console\n'
)


EARLY = (
    "/etc/apt/apt.conf.d/90proxy",
    "/etc/udev/rules.d/70-persistent-net.rules",
    *INSTALLER_LEFTOVERS,
    "/etc/systemd/system/containerd.service.d/http-proxy.conf",
)
CLOUD_INIT = (
    "/var/lib/cloud",
    "/var/log/cloud-init.log",
    "/var/log/cloud-init-output.log",
    "/run/cloud-init",
    "/etc/cloud/cloud-init.disabled",
)
KEYS = ("/etc/ssh/ssh_host_*", "/root/.ssh/authorized_keys", "/home/*/.ssh/authorized_keys")
HISTORY = ("/swap.img", "/swapfile", "/root/.bash_history", "/home/*/.bash_history")


def reset_cloud_init(*flags: str) -> tuple[Run, ...]:
    """cloud-init forgets this instance, and the machine-id is left empty, so the next boot is
    not systemd's "first boot".

    ``cloud-init clean --machine-id`` writes "uninitialized" (cloud-init >= 23: Ubuntu 24.04,
    Debian 13) or *deletes* /etc/machine-id (Debian 12's 22.4). Either is a first boot to systemd,
    which then runs ``preset-all`` and the first-boot units. On Debian 12 the presets enabled
    systemd-networkd-wait-online on an ifupdown image, and every server booted from the snapshot
    waited out its 2-minute timeout (SSH after 224 s against 50 s for the build server, measured
    on localcloud). On the netplan images (Debian 13 here, Ubuntu) the presets re-enable what is
    already enabled, and the first-boot ``sshd-keygen.service`` makes every host key type that
    cloud-init then makes again: a slower first boot of every node for nothing (the boot test
    measured it against the build server). An empty file (image-builder's own "Truncate machine
    id", which its later ``cloud-init clean`` undoes) gets a fresh id on boot without either.
    A deliberate difference from upstream's end state ("uninitialized"), in the parity table.
    """
    return (
        Run(" ".join(["cloud-init clean --logs --machine-id", *flags])),
        Run("install -m 0644 /dev/null /etc/machine-id"),
    )


def removed_paths(ctx: RecipeContext) -> list[str]:
    """Every path sysprep deletes (as shell globs); tests check this list."""
    return [*EARLY, *CLOUD_INIT, "/tmp/*", "/var/tmp/*", *NETWORK_CONFIG_FILES, *KEYS, *HISTORY]


def sysprep(ctx: RecipeContext) -> Step:
    return Step(
        "sysprep",
        "hold packages, clean apt, reset identity, remove keys, logs and history, fstrim",
        (
            # Build-time settings out first: the one initramfs generation, the final system.
            *buildtime.leave(),
            # setup masked background apt for the build; the image gets upstream's state instead:
            # unmasked, the timers and unattended-upgrades disabled and stopped.
            Run(f"systemctl unmask {APT_UNITS} 2>/dev/null || true"),
            Run("systemctl disable --now apt-daily.timer apt-daily-upgrade.timer 2>/dev/null || true"),
            Run("systemctl disable --now unattended-upgrades.service 2>/dev/null || true"),
            Run(
                "systemctl stop apt-daily.service apt-daily-upgrade.service unattended-upgrades.service 2>/dev/null || true"
            ),
            # A node image must not drift: hold every installed package (image-builder #920).
            Run("dpkg-query -f '${binary:Package}\\n' -W | xargs apt-mark hold >/dev/null"),
            Run("rm -f " + " ".join(EARLY)),
            Run("systemctl stop rsyslog 2>/dev/null || true"),
            Run(f"{APT_GET} autoclean && {APT_GET} autoremove", env=APT_ENV, kind="apt"),
            Run("rm -rf /var/lib/apt/lists && install -d -m 0755 /var/lib/apt/lists/partial"),
            Put("/etc/default/grub.d/50-cloudimg-settings.cfg", GRUB_CFG.encode()),
            Run("if [ -x /usr/sbin/update-grub ]; then update-grub; fi"),
            Run("rm -f /etc/machine-id && touch /etc/machine-id && chmod 0644 /etc/machine-id"),
            # image-builder truncates the file, then its hostname task writes localhost.local into
            # it; cloud-init sets each new server's own name on first boot.
            Run("printf 'localhost.local\\n' > /etc/hostname && chmod 0644 /etc/hostname && hostname localhost.local"),
            Put("/etc/hosts", HOSTS.encode()),
            Run(
                "for f in /var/log/wtmp /var/log/lastlog; do : > $f; chgrp utmp $f 2>/dev/null || true; chmod 0664 $f; done"
            ),
            Run("rm -rf " + " ".join(CLOUD_INIT)),
            *reset_cloud_init(),
            Run("rm -rf /tmp/* /tmp/.[!.]* /var/tmp/* /var/tmp/.[!.]*"),
            Run("rm -f " + " ".join(NETWORK_CONFIG_FILES)),
            Run("rm -f " + " ".join(KEYS)),
            Run("find /var/log -type f -name '*.log' -exec truncate -s 0 {} +"),
            Run("find /var/log -type f -regex '.*[0-9z]$' -delete"),
            Run("rm -f " + " ".join(HISTORY)),
            Run("journalctl --rotate && journalctl -m --vacuum-time=1s"),
            Run("systemctl is-enabled -q ssh 2>/dev/null || systemctl enable ssh 2>/dev/null || true"),
            Run("fstrim --all --verbose || true"),
            Run("sync"),
        ),
    )
