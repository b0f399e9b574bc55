"""A pkgs.k8s.io-shaped apt repository for the mirror: ``<mirror>/pkgs/core:/stable:/<series>/deb/``.

Laid out as pkgs.k8s.io lays out one Kubernetes minor: a flat repository (``deb <url> /``) with
``Packages``/``Packages.gz``, a ``Release`` signed as ``InRelease`` and ``Release.gpg`` by a key
generated when the mirror is populated, ``Release.key`` (armored) beside them, and the debs in
``amd64/``. It holds ``kubelet``, ``kubeadm``, ``kubectl``, ``cri-tools`` and ``kubernetes-cni`` at
the local var file's exact versions, with the dependency fields pkgs.k8s.io's packages declare,
so the recipe's ``pkg`` path adds the key, the source, installs pinned versions and holds them
like production. ``kubernetes-cni`` carries Debian's real CNI plugins; the other four carry the
**stand-in** programs (scripts marked ``STANDIN``), since the real binaries exist only on the
internet.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ARCH = "amd64"
MAINTAINER = "Kubernetes Authors <dev@kubernetes.io>"


@dataclass(frozen=True)
class Deb:
    package: str
    version: str
    description: str
    files: dict[str, tuple[bytes, int]]  # path in the package -> (content, mode)
    fields: dict[str, str] = field(default_factory=dict)  # Depends, Conflicts, Provides, ...
    directories: tuple[str, ...] = ()  # empty directories the package owns

    @property
    def filename(self) -> str:
        return f"{ARCH}/{self.package}_{self.version}_{ARCH}.deb"


class RepoError(RuntimeError):
    pass


def _control(deb: Deb, installed_kb: int) -> str:
    lines = [
        f"Package: {deb.package}",
        f"Version: {deb.version}",
        f"Architecture: {ARCH}",
        f"Maintainer: {MAINTAINER}",
        f"Installed-Size: {installed_kb}",
        *(f"{k}: {v}" for k, v in deb.fields.items()),
        "Section: admin",
        "Priority: optional",
        "Homepage: https://kubernetes.io",
        f"Description: {deb.description}",
    ]
    return "\n".join(lines) + "\n"


def build_deb(deb: Deb, out: Path) -> str:
    """Build ``deb`` into ``out`` (its ``Filename`` below it); return its control paragraph."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        size = 0
        for path, (data, mode) in deb.files.items():
            target = root / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            target.chmod(mode)
            size += len(data)
        for d in deb.directories:
            (root / d.lstrip("/")).mkdir(parents=True, exist_ok=True)
        for folder in [f for f in root.rglob("*") if f.is_dir()]:
            folder.chmod(0o755)
        (root / "DEBIAN").mkdir()
        control = _control(deb, max(1, size // 1024))
        (root / "DEBIAN" / "control").write_text(control)
        dest = out / deb.filename
        dest.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(dest)],
            check=True,
            capture_output=True,
            env={**os.environ, "SOURCE_DATE_EPOCH": "0"},
        )
    data = dest.read_bytes()
    return (
        control
        + f"Filename: {deb.filename}\nSize: {len(data)}\n"
        + f"MD5sum: {hashlib.md5(data).hexdigest()}\nSHA256: {hashlib.sha256(data).hexdigest()}\n"
    )


def _gpg(home: Path, *args: str, stdin: bytes | None = None) -> bytes:
    r = subprocess.run(["gpg", "--homedir", str(home), "--batch", "--yes", *args], input=stdin, capture_output=True)
    if r.returncode != 0:
        raise RepoError(f"gpg {' '.join(args[:2])} failed: {r.stderr.decode(errors='replace').strip()[-400:]}")
    return r.stdout


def sign(repo: Path) -> str:
    """Sign ``repo/Release`` with a key made now; write InRelease, Release.gpg, Release.key.
    Return the key's fingerprint."""
    if shutil.which("gpg") is None:
        raise RepoError("gpg is missing: apt-get install gnupg (the mirror signs its apt repository)")
    with tempfile.TemporaryDirectory(prefix="localcloud-gpg-") as tmp:
        home = Path(tmp)
        home.chmod(0o700)
        _gpg(
            home, "--passphrase", "", "--quick-generate-key",
            "localcloud artifact mirror (stand-in of pkgs.k8s.io) <mirror@localcloud.invalid>",
            "rsa3072", "sign", "never",
        )  # fmt: skip
        fpr = next(
            line.split(":")[9]
            for line in _gpg(home, "--with-colons", "--list-keys").decode().splitlines()
            if line.startswith("fpr:")
        )
        release = (repo / "Release").read_bytes()
        (repo / "InRelease").write_bytes(_gpg(home, "--digest-algo", "SHA512", "--clearsign", stdin=release))
        (repo / "Release.gpg").write_bytes(
            _gpg(home, "--digest-algo", "SHA512", "--armor", "--detach-sign", stdin=release)
        )
        (repo / "Release.key").write_bytes(_gpg(home, "--armor", "--export", fpr))
    return fpr


def write_repo(repo: Path, debs: list[Deb], label: str) -> str:
    """Build every deb, the indexes and the signed Release into ``repo``; return the key's fingerprint."""
    repo.mkdir(parents=True, exist_ok=True)
    packages = "\n".join(build_deb(d, repo) for d in debs).encode()
    (repo / "Packages").write_bytes(packages)
    (repo / "Packages.gz").write_bytes(gzip.compress(packages, mtime=0))
    sums = "".join(
        f" {hashlib.sha256(p.read_bytes()).hexdigest()} {p.stat().st_size} {p.name}\n"
        for p in (repo / "Packages", repo / "Packages.gz")
    )
    date = dt.datetime.now(dt.UTC).strftime("%a, %d %b %Y %H:%M:%S UTC")
    (repo / "Release").write_text(
        f"Origin: localcloud\nLabel: {label}\nArchitectures: {ARCH}\nDate: {date}\nSHA256:\n{sums}"
    )
    return sign(repo)
