"""Step 1, setup (image-builder's setup role + the node role's apt guard): apt sources,
no background apt, update, dist-upgrade, the common packages."""

from __future__ import annotations

from ..options import RecipeContext
from ..plan import Put, Run, Step
from ..versions import UBUNTU_REPO, UBUNTU_SECURITY_REPO
from . import buildtime
from .common import APT_ENV, APT_GET, apt_install, fetch_helper

APT_UNITS = (
    "apt-daily.timer apt-daily-upgrade.timer apt-daily.service apt-daily-upgrade.service unattended-upgrades.service"
)


# Debian serves security updates from their own archive, not below the main mirror.
DEBIAN_SECURITY = "http://security.debian.org/debian-security"


def apt_repos(ctx: RecipeContext) -> tuple[str, str] | None:
    """(archive, security) to write, or None to keep the image's own sources.

    Ubuntu: always written, as image-builder's setup role does (its templates, with
    ``ubuntu_repo``/``ubuntu_security_repo`` from the var file — image-builder's defaults
    us.archive/security.ubuntu.com); ``apt_mirror``/``apt_security_mirror`` win. Debian is not an
    image-builder target: its sources are rewritten only when ``apt_mirror`` is given, and
    security stays at Debian's security archive unless ``apt_security_mirror`` names one."""
    o, v = ctx.options, ctx.versions.model_dump()
    if ctx.profile.is_ubuntu:
        archive = o.apt_mirror or str(v.get("ubuntu_repo") or UBUNTU_REPO)
        security = o.apt_security_mirror or (o.apt_mirror if o.apt_mirror else None)
        return archive, security or str(v.get("ubuntu_security_repo") or UBUNTU_SECURITY_REPO)
    if o.apt_mirror is None:
        return None
    return o.apt_mirror, o.apt_security_mirror or DEBIAN_SECURITY


def apt_sources(ctx: RecipeContext, archive: str, security: str) -> str:
    p = ctx.profile
    if p.distribution == "ubuntu":
        keyring = "/usr/share/keyrings/ubuntu-archive-keyring.gpg"
        suites, sec_suite = f"{p.release} {p.release}-updates {p.release}-backports", f"{p.release}-security"
        # image-builder's templates: multiverse in ubuntu.sources (24.04), not in sources.list (22.04)
        components = "main restricted universe multiverse" if p.apt_sources_deb822 else "main restricted universe"
    else:
        keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
        suites, sec_suite, components = f"{p.release} {p.release}-updates", f"{p.release}-security", "main"
    if p.apt_sources_deb822:
        return (
            f"Types: deb\nURIs: {archive}\nSuites: {suites}\nComponents: {components}\nSigned-By: {keyring}\n\n"
            f"Types: deb\nURIs: {security}\nSuites: {sec_suite}\nComponents: {components}\nSigned-By: {keyring}\n"
        )
    lines = [f"deb {archive} {suite} {components}" for suite in suites.split()]
    return "\n".join([*lines, f"deb {security} {sec_suite} {components}"]) + "\n"


def setup(ctx: RecipeContext) -> Step:
    ops: list[Put | Run] = [*buildtime.enter(), fetch_helper()]
    repos = apt_repos(ctx)
    if repos is not None:
        ops.append(Put(ctx.profile.apt_sources_path, apt_sources(ctx, *repos).encode()))
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
        Run(f"{APT_GET} update", env=APT_ENV, kind="apt"),
    ]
    if ctx.options.dist_upgrade:
        ops.append(Run(f"{APT_GET} dist-upgrade", env=APT_ENV, kind="apt"))
    # image-builder installs debs and extra_debs (the var file's) in one apt call.
    ops.append(apt_install(["psmisc", *ctx.profile.debs(ctx.arch), *ctx.versions.extra_debs.split()]))
    return Step("setup", "apt sources, no background apt, update, dist-upgrade, common packages", tuple(ops))
