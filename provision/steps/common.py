"""Helpers shared by the steps: verified downloads, apt, systemd."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from ..plan import Plan, Put, Run

FETCH = "/usr/local/sbin/capi-image-fetch"

# Every download goes through this: it refuses a file whose sha256 does not match either the
# pinned value or the one published beside it (a .sha256/.sha256sum file, one hash or
# "hash  name" lines).
FETCH_SCRIPT = """#!/bin/bash
# capi-image-fetch URL DEST SHA256|@CHECKSUM_URL — download and verify, or fail.
set -euo pipefail
url=$1 dest=$2 want=$3
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
curl -fsSL --retry 5 --retry-delay 2 --connect-timeout 20 -o "$tmp" "$url"
if [[ $want == @* ]]; then
  sums=$(curl -fsSL --retry 5 --retry-delay 2 --connect-timeout 20 "${want#@}")
  name=$(basename "$url")
  line=$(printf '%s\\n' "$sums" | awk -v n="$name" '$2 == n || $2 == "*"n {print $1; exit}')
  if [[ -z $line ]]; then line=$(printf '%s\\n' "$sums" | awk 'NF == 1 {print $1; exit}'); fi
  want=$line
fi
if [[ ! $want =~ ^[0-9a-f]{64}$ ]]; then echo "no sha256 for $url" >&2; exit 1; fi
got=$(sha256sum "$tmp" | awk '{print $1}')
if [[ $got != "$want" ]]; then echo "sha256 mismatch for $url: got $got, want $want" >&2; exit 1; fi
install -D -m 0644 "$tmp" "$dest"
"""

APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}
APT_GET = "apt-get -y -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"


def fetch_helper() -> Put:
    return Put(FETCH, FETCH_SCRIPT.encode(), 0o755)


def fetch(url: str, dest: str, checksum: str) -> Run:
    """Download ``url`` to ``dest``; ``checksum`` is a sha256 or ``@<checksum file url>``."""
    return Run(f"{FETCH} {shlex.quote(url)} {shlex.quote(dest)} {shlex.quote(checksum)}", kind="download")


@dataclass(frozen=True)
class Fetched:
    """A download of the plan, read back from its ``fetch`` command."""

    url: str
    dest: str
    checksum: str  # a sha256, or ``@<checksum file url>``


def fetches(plan: Plan) -> list[Fetched]:
    """Every ``fetch`` of the plan, in order (the SBOM and the provenance name them)."""
    found = []
    for step in plan.steps:
        for op in step.operations:
            if isinstance(op, Run) and op.command.startswith(FETCH + " "):
                _, url, dest, checksum = [*shlex.split(op.command), "", "", ""][:4]
                found.append(Fetched(url, dest, checksum))
    return found


def apt_install(packages: list[str] | tuple[str, ...], *extra: str) -> Run:
    """Install with the recommended packages, as image-builder's Ansible apt tasks do (apt's
    default): lvm2 brings thin-provisioning-tools (LVM-thin CSI volumes), and so on."""
    args = " ".join([*extra, *packages])
    return Run(f"{APT_GET} install {args}", env=APT_ENV, kind="apt")


def pinned_or_published(pins: dict[str, str], filename: str, checksum_url: str) -> str:
    return pins.get(filename) or f"@{checksum_url}"


def enable(*units: str, now: bool = False) -> Run:
    """``systemctl enable`` where a unit is not enabled yet, as Ansible's systemd module (which
    image-builder uses) does: enabling a unit that has a SysV script runs systemd-sysv-install
    (update-rc.d, in perl) every time — 5-30 s each on a slow build server, for no change."""
    names = " ".join(units)
    command = f"for u in {names}; do systemctl is-enabled -q $u || systemctl enable $u; done"
    return Run(f"{command} && systemctl start {names}" if now else command)
