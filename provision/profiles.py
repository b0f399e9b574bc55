"""OS profiles: what differs between the operating systems a node image is built from.

Package lists follow image-builder's ``common_debs``/``common_virt_debs`` and its hcloud
provider role; where Debian lacks an Ubuntu package (the linux-*-tools metapackages, the
cloud-initramfs helpers) the Debian profile leaves it out — a deliberate difference, since the
local test bed can only run Debian.
"""

from __future__ import annotations

from dataclasses import dataclass

COMMON_DEBS = [
    "auditd",
    "apt-transport-https",
    "conntrack",
    "chrony",
    "curl",
    "ebtables",
    "jq",
    "gnupg",
    "libnetfilter-acct1",
    "libnetfilter-cttimeout1",
    "libnetfilter-log1",
    "python3-netifaces",
    "python3-pip",
    "socat",
]
CSI_DEBS = ("nfs-common", "open-iscsi", "lvm2", "xfsprogs")
ARCHES = {"x86": "amd64", "arm": "arm64"}


@dataclass(frozen=True)
class Profile:
    name: str  # ubuntu-2404
    distribution: str  # ubuntu
    release: str  # noble
    version: str  # 24.04
    hcloud_image: str  # the Hetzner system image to boot: ubuntu-24.04
    apt_sources_path: str
    apt_sources_deb822: bool
    virt_debs: tuple[str, ...]  # image-builder's common_virt_debs (amd64 only)
    provider_debs: tuple[str, ...]  # the hcloud provider role's cloud packages
    sysctl_file: str
    network_config_globs: tuple[str, ...]  # what cloud-init writes and sysprep removes
    chrony_service: str = "chrony"

    @property
    def os_label(self) -> str:
        return f"{self.distribution}-{self.version}"

    @property
    def is_ubuntu(self) -> bool:
        return self.distribution == "ubuntu"

    def debs(self, arch: str) -> list[str]:
        """setup's package list: common debs, plus the virt debs on amd64 (as image-builder)."""
        return COMMON_DEBS + (list(self.virt_debs) if ARCHES[arch] == "amd64" else [])


_UBUNTU_PROVIDER = (
    "cloud-init",
    "cloud-guest-utils",
    "cloud-initramfs-copymods",
    "cloud-initramfs-dyn-netconf",
    "linux-cloud-tools-generic",
    "linux-tools-generic",
)
_NETPLAN = ("/lib/netplan/*.yaml", "/etc/netplan/*.yaml", "/run/netplan/*.yaml")

PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            "ubuntu-2404", "ubuntu", "noble", "24.04", "ubuntu-24.04",
            "/etc/apt/sources.list.d/ubuntu.sources", True,
            ("linux-cloud-tools-virtual", "linux-tools-virtual", "open-vm-tools"),
            _UBUNTU_PROVIDER, "/etc/sysctl.conf", _NETPLAN,
        ),
        Profile(
            "ubuntu-2204", "ubuntu", "jammy", "22.04", "ubuntu-22.04",
            "/etc/apt/sources.list", False,
            ("linux-cloud-tools-virtual", "linux-tools-virtual", "open-vm-tools"),
            _UBUNTU_PROVIDER, "/etc/sysctl.conf", _NETPLAN,
        ),
        Profile(
            "debian-12", "debian", "bookworm", "12", "debian-12",
            "/etc/apt/sources.list.d/debian.sources", True,
            ("open-vm-tools",),  # Debian has no linux-*-tools-virtual metapackages
            # Debian has cloud-initramfs-dyn-netconf; copymods and the linux-*-tools are Ubuntu's.
            ("cloud-init", "cloud-guest-utils", "cloud-initramfs-dyn-netconf"),
            "/etc/sysctl.conf",
            ("/etc/network/interfaces.d/50-cloud-init", "/etc/network/interfaces.d/50-cloud-init.cfg"),
        ),
    )
}  # fmt: skip
