"""Step 1, setup (image-builder's setup role + the node role's apt guard): apt sources,
no background apt, update, dist-upgrade, the common packages."""

from __future__ import annotations

from ..options import RecipeContext
from ..plan import Put, Run, Step
from .common import APT_ENV, APT_GET, apt_install, fetch_helper

APT_UNITS = (
    "apt-daily.timer apt-daily-upgrade.timer apt-daily.service apt-daily-upgrade.service unattended-upgrades.service"
)


def apt_sources(ctx: RecipeContext) -> str:
    p, mirror = ctx.profile, ctx.options.apt_mirror
    assert mirror is not None
    security = ctx.options.apt_security_mirror or mirror
    if p.distribution == "ubuntu":
        keyring = "/usr/share/keyrings/ubuntu-archive-keyring.gpg"
        suites, sec_suite, components = (
            f"{p.release} {p.release}-updates {p.release}-backports",
            f"{p.release}-security",
            "main restricted universe multiverse",
        )
    else:
        keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
        suites, sec_suite, components = f"{p.release} {p.release}-updates", f"{p.release}-security", "main"
    if p.apt_sources_deb822:
        return (
            f"Types: deb\nURIs: {mirror}\nSuites: {suites}\nComponents: {components}\nSigned-By: {keyring}\n\n"
            f"Types: deb\nURIs: {security}\nSuites: {sec_suite}\nComponents: {components}\nSigned-By: {keyring}\n"
        )
    lines = [f"deb {mirror} {suite} {components}" for suite in suites.split()]
    return "\n".join([*lines, f"deb {security} {sec_suite} {components}"]) + "\n"


def setup(ctx: RecipeContext) -> Step:
    ops: list[Put | Run] = [fetch_helper()]
    if ctx.options.apt_mirror:
        ops.append(Put(ctx.profile.apt_sources_path, apt_sources(ctx).encode()))
    ops += [
        # Background apt grabs the dpkg lock at boot and breaks installs (image-builder #2030).
        Run(f"systemctl stop {APT_UNITS} 2>/dev/null || true"),
        Run(f"systemctl mask {APT_UNITS} 2>/dev/null || true"),
        Run(
            "for i in $(seq 60); do fuser /var/lib/dpkg/lock-frontend >/dev/null 2>&1 || exit 0; sleep 5; done; "
            "echo 'dpkg lock still held after 300s' >&2; exit 1"
        ),
        # Building on one of our own snapshots (project `image: <id>`): sysprep held every
        # package there; release them so this build can upgrade, and its sysprep holds again.
        Run("apt-mark showhold | xargs -r apt-mark unhold >/dev/null"),
        Run(f"{APT_GET} update", env=APT_ENV),
    ]
    if ctx.options.dist_upgrade:
        ops.append(Run(f"{APT_GET} dist-upgrade", env=APT_ENV))
    ops.append(apt_install(["psmisc", *ctx.profile.debs(ctx.arch)]))
    return Step("setup", "apt sources, no background apt, update, dist-upgrade, common packages", tuple(ops))
