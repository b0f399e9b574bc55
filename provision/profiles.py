"""OS profiles: what differs between the operating systems a node image can be built from."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    name: str  # ubuntu-2404
    distribution: str  # ubuntu
    release: str  # noble
    version: str  # 24.04
    hcloud_image: str  # the Hetzner system image to boot: ubuntu-24.04

    @property
    def os_label(self) -> str:
        return f"{self.distribution}-{self.version}"


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("ubuntu-2404", "ubuntu", "noble", "24.04", "ubuntu-24.04"),
        Profile("ubuntu-2204", "ubuntu", "jammy", "22.04", "ubuntu-22.04"),
        Profile("debian-12", "debian", "bookworm", "12", "debian-12"),
    )
}
