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
    virt_debs: tuple[str, ...]  # image-builder's common_virt_debs (every architecture, as upstream)
    provider_debs: tuple[str, ...]  # the hcloud provider role's cloud packages
    sysctl_file: str
    chrony_service: str = "chrony"

    @property
    def os_label(self) -> str:
        return f"{self.distribution}-{self.version}"

    @property
    def is_ubuntu(self) -> bool:
        return self.distribution == "ubuntu"

    def debs(self, arch: str) -> list[str]:
        """setup's package list: common debs plus the virt debs, on every architecture — upstream's
        node role adds ``common_virt_debs`` whatever the architecture (``arch`` is for
        callers that ask per architecture; the list does not depend on it)."""
        assert arch in ARCHES, arch
        return COMMON_DEBS + list(self.virt_debs)


_UBUNTU_PROVIDER = (
    "cloud-init",
    "cloud-guest-utils",
    "cloud-initramfs-copymods",
    "cloud-initramfs-dyn-netconf",
    "linux-cloud-tools-generic",
    "linux-tools-generic",
)
# What cloud-init writes for the network, whichever renderer the image has: upstream's sysprep
# deletes every netplan file it finds (Ubuntu, Debian 13 here); on an ifupdown image (Debian 12)
# cloud-init's eni file. sysprep removes all of them: each image has only its own.
NETPLAN_FILES = ("/lib/netplan/*.yaml", "/etc/netplan/*.yaml", "/run/netplan/*.yaml")
ENI_FILES = ("/etc/network/interfaces.d/50-cloud-init", "/etc/network/interfaces.d/50-cloud-init.cfg")
NETWORK_CONFIG_FILES = (*NETPLAN_FILES, *ENI_FILES)

PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            "ubuntu-2404", "ubuntu", "noble", "24.04", "ubuntu-24.04",
            "/etc/apt/sources.list.d/ubuntu.sources", True,
            ("linux-cloud-tools-virtual", "linux-tools-virtual", "open-vm-tools"),
            _UBUNTU_PROVIDER, "/etc/sysctl.conf",
        ),
        Profile(
            "ubuntu-2204", "ubuntu", "jammy", "22.04", "ubuntu-22.04",
            "/etc/apt/sources.list", False,
            ("linux-cloud-tools-virtual", "linux-tools-virtual", "open-vm-tools"),
            _UBUNTU_PROVIDER, "/etc/sysctl.conf",
        ),
        Profile(
            "debian-12", "debian", "bookworm", "12", "debian-12",
            "/etc/apt/sources.list.d/debian.sources", True,
            ("open-vm-tools",),  # Debian has no linux-*-tools-virtual metapackages
            # Debian has cloud-initramfs-dyn-netconf; copymods and the linux-*-tools are Ubuntu's.
            ("cloud-init", "cloud-guest-utils", "cloud-initramfs-dyn-netconf"),
            "/etc/sysctl.conf",
        ),
        # Debian 13 as Hetzner offers it; localcloud's debian-13 is networked as Ubuntu's cloud
        # images are (netplan + systemd-networkd), so it runs the production path's branches.
        Profile(
            "debian-13", "debian", "trixie", "13", "debian-13",
            "/etc/apt/sources.list.d/debian.sources", True,
            ("open-vm-tools",),
            ("cloud-init", "cloud-guest-utils", "cloud-initramfs-dyn-netconf"),
            "/etc/sysctl.conf",
        ),
    )
}  # fmt: skip
