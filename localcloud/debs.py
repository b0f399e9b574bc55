"""Debian packages for the artifact mirror: downloaded with ``apt-get download`` and unpacked.

The mirror repacks Debian's own builds of what a node downloads: Debian 12's containerd 1.6,
runc 1.1 and CNI plugins (the host's own archive), and containerd 2.x and runc 1.3 from
Debian's unstable suite (fetched through a private apt configuration beside the cache, using the
archive the host's apt sources name; the host's own sources are not touched).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

POPULATE_COMMAND = "make artifacts  (or: python -m localcloud artifacts)"


class MirrorError(RuntimeError):
    """The mirror cannot be populated; the message says what is missing and what fixes it."""


@dataclass(frozen=True)
class DebSet:
    """Packages unpacked together into one tree, from the host's archive or another suite."""

    name: str  # the folder below <cache>/artifacts
    packages: tuple[str, ...]
    suite: str | None = None  # None: the host's own apt configuration


def host_archive() -> str:
    """The Debian archive URI the host's apt sources use (deb822 or one-line)."""
    candidates = sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))
    for f in candidates:
        for line in f.read_text(errors="replace").splitlines():
            if line.startswith("URIs:") and "security" not in line:
                return line.split(":", 1)[1].split()[0]
    for f in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*.list"))]:
        if f.exists():
            for line in f.read_text(errors="replace").splitlines():
                m = re.match(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+\S+", line)
                if m and "security" not in m.group(1):
                    return m.group(1)
    raise MirrorError("no Debian archive found in the host's apt sources (/etc/apt/sources.list.d/*.sources)")


def _apt(args: list[str], cwd: Path, conf: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["apt-get", *conf, *args], cwd=cwd, capture_output=True, text=True)


def _suite_conf(work: Path, suite: str) -> list[str]:
    """apt options for a private configuration naming only ``suite`` of the host's archive."""
    (work / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (work / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    sources = work / "sources.list"
    sources.write_text(
        f"deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {host_archive()} {suite} main\n"
    )
    return [
        "-o", f"Dir::Etc::SourceList={sources}",
        "-o", "Dir::Etc::SourceParts=/nonexistent",
        "-o", f"Dir::State::Lists={work / 'lists'}",
        "-o", f"Dir::Cache={work / 'cache'}",
        "-o", "APT::Get::List-Cleanup=false",
        "-o", "Acquire::Languages=none",
    ]  # fmt: skip


def download(dest: Path, debs: DebSet, work: Path) -> None:
    if shutil.which("apt-get") is None:
        raise MirrorError(
            "apt-get is missing: the artifact mirror repacks Debian's containerd, runc and CNI plugins, "
            "so it is populated on a Debian host"
        )
    conf = _suite_conf(work, debs.suite) if debs.suite else []
    r = _apt(["download", *debs.packages], dest, conf)
    if r.returncode != 0 and (debs.suite or os.geteuid() == 0):
        # A fresh machine (or a new private configuration) has no package lists yet.
        _apt(["update", "-qq"], dest, conf)
        r = _apt(["download", *debs.packages], dest, conf)
    if r.returncode != 0:
        where = f"Debian's {debs.suite} suite" if debs.suite else "the host's Debian archive"
        raise MirrorError(
            f"could not download {', '.join(debs.packages)} from {where} with apt-get download: "
            f"{r.stderr.strip()[-800:]}\nCheck the apt sources and the network (as root: apt-get update), "
            f"then run {POPULATE_COMMAND}."
        )


def upstream_version(debian_version: str) -> str:
    """``2.1.9~ds1-5`` / ``1.3.6+ds1-1`` / ``1:1.2`` -> the upstream release ``2.1.9`` / ``1.3.6``."""
    v = debian_version.split(":", 1)[-1].rsplit("-", 1)[0]
    return re.split(r"[~+]", v, maxsplit=1)[0]


def unpacked(cache: Path, debs: DebSet) -> tuple[Path, dict[str, str]]:
    """``debs`` downloaded and unpacked once into ``<cache>/<name>``; with the package versions."""
    root = cache / debs.name
    done = root / ".done"
    if done.exists():
        return root, json.loads(done.read_text() or "{}")
    files = cache / f"{debs.name}.debs"
    shutil.rmtree(files, ignore_errors=True)
    files.mkdir(parents=True)
    download(files, debs, cache / f"{debs.name}.apt")
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    versions = {}
    for deb in sorted(files.glob("*.deb")):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
        fields = subprocess.run(
            ["dpkg-deb", "-f", str(deb), "Package", "Version"], check=True, capture_output=True, text=True
        ).stdout
        meta = dict(line.split(": ", 1) for line in fields.splitlines() if ": " in line)
        versions[meta["Package"]] = meta["Version"]
    done.write_text(json.dumps(versions))
    return root, versions
