"""What a node holds, read from the build server in one SSH command after the recipe ran:
every installed package (with its source package and hold state), every binary in the folders
the recipe installs release downloads to (with its sha256, and the download it came from), every
pre-pulled image (with its digest), the kernel that will boot, and the OS.

Read-only: the commands change nothing on the machine, so the image is the same with or without
an SBOM. The output is sectioned (``### name``) plain text, parsed here; ``COMMAND`` is what runs.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field

from provision.plan import Plan
from provision.steps.common import fetches

# Where the recipe puts what it downloads (release tarballs: containerd, runc, CNI, crictl,
# kubelet & co. for the http source) — and where custom scripts put tools.
BINARY_DIRS = ("/usr/local/bin", "/usr/local/sbin", "/opt/cni/bin")
SECTIONS = ("os", "packages", "holds", "kernel", "binaries", "images")

COMMAND = "; ".join(
    [
        "export LC_ALL=C",
        "echo '### os'",
        '. /etc/os-release && echo "$ID\t$VERSION_ID\t${VERSION_CODENAME:-}"',
        "echo '### packages'",
        # installed packages only (status ii/hi): name, version, arch, source name and version
        "dpkg-query -W -f='${db:Status-Abbrev}\\t${Package}\\t${Version}\\t${Architecture}\\t"
        "${source:Package}\\t${source:Version}\\n' | grep -E '^[ih]i'",
        "echo '### holds'",
        "apt-mark showhold",
        "echo '### kernel'",
        "ls /boot/vmlinuz-* 2>/dev/null | sed 's|/boot/vmlinuz-||' | sort -V | tail -n 1",
        "echo '### binaries'",
        f"find {' '.join(BINARY_DIRS)} -maxdepth 1 -type f -print0 2>/dev/null | sort -z | xargs -0r sha256sum",
        "echo '### images'",
        # the pre-pulled images as containerd holds them for the kubelet
        "(ctr -n k8s.io images ls 2>/dev/null || true)",
        "true",
    ]
)


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    arch: str
    source: str
    source_version: str
    held: bool = False


@dataclass(frozen=True)
class Binary:
    path: str
    sha256: str
    url: str | None = None  # the download it came from, when the recipe downloaded it
    version: str | None = None


@dataclass(frozen=True)
class Image:
    ref: str  # registry/name:tag
    digest: str


@dataclass
class Inventory:
    os_id: str = ""
    os_version: str = ""
    os_codename: str = ""
    kernel: str = ""
    packages: list[Package] = field(default_factory=list)
    binaries: list[Binary] = field(default_factory=list)
    images: list[Image] = field(default_factory=list)


@dataclass(frozen=True)
class Download:
    """A release download of the recipe: its URL and the component's version."""

    url: str
    version: str | None


def downloads(plan: Plan, versions: dict[str, str]) -> list[Download]:
    """Every ``capi-image-fetch URL DEST`` of the plan, with the version of what it fetches
    (containerd, runc, CNI plugins, crictl, Kubernetes), from the var file's values."""
    return [Download(f.url, _version_of(f.url, versions)) for f in fetches(plan)]


_COMPONENTS = (  # (word in the file or URL, var file key)
    ("containerd", "containerd_version"),
    ("runc", "runc_version"),
    ("cni", "kubernetes_cni_semver"),
    ("crictl", "crictl_version"),
    ("critest", "crictl_version"),
    ("kube", "kubernetes_semver"),
)


def _version_of(name: str, versions: dict[str, str]) -> str | None:
    base = posixpath.basename(name).lower()
    for word, key in _COMPONENTS:
        if word in base and versions.get(key):
            return versions[key]
    return None


def parse(output: str, fetched: list[Download], versions: dict[str, str]) -> Inventory:
    """The sectioned output of ``COMMAND`` as an Inventory (each list sorted: the same machine
    gives the same inventory, whatever order the tools print in)."""
    sections: dict[str, list[str]] = {s: [] for s in SECTIONS}
    current: list[str] | None = None
    for line in output.splitlines():
        if line.startswith("### "):
            current = sections.get(line[4:].strip())
            continue
        if current is not None and line.strip():
            current.append(line.rstrip("\n"))
    inv = Inventory()
    if sections["os"]:
        os_id, os_version, codename = ([*sections["os"][0].split("\t"), "", ""])[:3]
        inv.os_id, inv.os_version, inv.os_codename = os_id, os_version, codename
    holds = {h.strip() for h in sections["holds"]}
    packages = []
    for line in sections["packages"]:
        cols = line.split("\t")
        if len(cols) < 6:
            continue
        _, name, version, arch, source, source_version = cols[:6]
        source = source.split(" ")[0] or name
        packages.append(Package(name, version, arch, source, source_version or version, name in holds))
    inv.packages = sorted(set(packages), key=lambda p: (p.name, p.arch))
    inv.kernel = sections["kernel"][-1].strip() if sections["kernel"] else ""
    binaries = []
    for line in sections["binaries"]:
        digest, _, path = line.partition("  ")
        if re.fullmatch(r"[0-9a-f]{64}", digest) and path:
            origin = next((d for d in fetched if _same_component(path, d.url)), None)
            found_version = origin.version if origin else _version_of(path, versions)
            binaries.append(Binary(path, digest, origin.url if origin else None, found_version))
    inv.binaries = sorted(binaries, key=lambda b: b.path)
    images = []
    for line in sections["images"]:
        cols = line.split()
        # the named references only: not the header, not digest-only refs (the same images)
        named = len(cols) >= 3 and cols[0] != "REF" and not cols[0].startswith("sha256:") and "@sha256:" not in cols[0]
        if named and cols[2].startswith("sha256:"):
            images.append(Image(cols[0], cols[2]))
    inv.images = sorted(set(images), key=lambda i: i.ref)
    return inv


def _same_component(path: str, url: str) -> bool:
    """Whether the binary at ``path`` came out of the download at ``url`` (the component's word
    in both: ``/usr/local/bin/ctr`` and ``containerd-….tar.gz`` share none, so ctr and the shims
    are containerd's by rule)."""
    name, base = posixpath.basename(path).lower(), posixpath.basename(url).lower()
    if name in ("ctr", "containerd-shim-runc-v2", "containerd-stress") or name.startswith("containerd"):
        return "containerd" in base
    if path.startswith("/opt/cni/bin/"):
        return "cni" in base
    return any(word in name and word in base for word, _ in _COMPONENTS)
