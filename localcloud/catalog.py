"""The fixed catalog of locations, data centers and server types.

Values mirror Hetzner's public catalog closely enough that clients which look up
``cpx22`` in ``nbg1`` or ``cax11`` (arm) in ``fsn1`` see what they would in production.
Prices are plausible, not authoritative.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .placement import Placement


@dataclass(frozen=True)
class Location:
    id: int
    name: str
    description: str
    country: str
    city: str
    latitude: float
    longitude: float
    network_zone: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "country": self.country,
            "city": self.city,
            "latitude": self.latitude,
            "longitude": self.longitude,
            "network_zone": self.network_zone,
        }


@dataclass(frozen=True)
class ServerType:
    id: int
    name: str
    cores: int
    memory: float
    disk: int
    cpu_type: str
    architecture: str
    category: str
    hourly_net: str
    monthly_net: str
    location_names: tuple[str, ...]
    storage_type: str = "local"
    included_traffic: int = 20 * 1024**4

    def to_json(self, placement: Mapping[tuple[str, str], Placement] | None = None) -> dict[str, Any]:
        """``placement``: per-location availability and deprecation set through the admin API."""
        placement = placement or {}

        def money(net: str) -> dict[str, str]:
            return {"net": net, "gross": f"{float(net) * 1.19:.4f}"}

        return {
            "id": self.id,
            "name": self.name,
            "description": self.name.upper(),
            "cores": self.cores,
            "memory": self.memory,
            "disk": self.disk,
            "deprecated": False,
            "deprecation": None,
            "prices": [
                {
                    "location": loc,
                    "price_hourly": money(self.hourly_net),
                    "price_monthly": money(self.monthly_net),
                    "included_traffic": self.included_traffic,
                    "price_per_tb_traffic": money("1.0000"),
                }
                for loc in self.location_names
            ],
            "storage_type": self.storage_type,
            "cpu_type": self.cpu_type,
            "category": self.category,
            "architecture": self.architecture,
            "locations": [
                {
                    "id": LOCATIONS_BY_NAME[loc].id,
                    "name": loc,
                    "deprecation": (
                        p.deprecation.to_json() if (p := placement.get((self.name, loc))) and p.deprecation else None
                    ),
                    "recommended": (p := placement.get((self.name, loc))) is None or p.available,
                    "available": p is None or p.available,
                }
                for loc in self.location_names
            ],
        }


@dataclass(frozen=True)
class Datacenter:
    id: int
    name: str
    description: str
    location: Location
    server_types: tuple[int, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        ids = list(self.server_types)
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "location": self.location.to_json(),
            "server_types": {"supported": ids, "available": ids, "available_for_migration": ids},
        }


LOCATIONS: tuple[Location, ...] = (
    Location(1, "fsn1", "Falkenstein DC Park 1", "DE", "Falkenstein", 50.47612, 12.370071, "eu-central"),
    Location(2, "nbg1", "Nuremberg DC Park 1", "DE", "Nuremberg", 49.452102, 11.076665, "eu-central"),
    Location(3, "hel1", "Helsinki DC Park 1", "FI", "Helsinki", 60.169855, 24.938379, "eu-central"),
    Location(4, "ash", "Ashburn, VA", "US", "Ashburn, VA", 39.045821, -77.487073, "us-east"),
    Location(5, "hil", "Hillsboro, OR", "US", "Hillsboro, OR", 45.54222, -122.951924, "us-west"),
    Location(6, "sin", "Singapore", "SG", "Singapore", 1.283333, 103.833333, "ap-southeast"),
)
LOCATIONS_BY_NAME = {loc.name: loc for loc in LOCATIONS}

_EU = ("fsn1", "nbg1", "hel1")
_ALL = ("fsn1", "nbg1", "hel1", "ash", "hil", "sin")

SERVER_TYPES: tuple[ServerType, ...] = (
    ServerType(114, "cx23", 2, 4, 40, "shared", "x86", "Cost-Optimized", "0.0056", "3.4900", _EU),
    ServerType(115, "cx33", 4, 8, 80, "shared", "x86", "Cost-Optimized", "0.0088", "5.4900", _EU),
    ServerType(116, "cx43", 8, 16, 160, "shared", "x86", "Cost-Optimized", "0.0152", "9.4900", _EU),
    ServerType(108, "cpx22", 2, 4, 80, "shared", "x86", "Regular Purpose", "0.0104", "6.4900", _ALL),
    ServerType(109, "cpx32", 4, 8, 160, "shared", "x86", "Regular Purpose", "0.0176", "10.9900", _ALL),
    ServerType(110, "cpx42", 8, 16, 320, "shared", "x86", "Regular Purpose", "0.0312", "19.4900", _ALL),
    ServerType(45, "cax11", 2, 4, 40, "shared", "arm", "Cost-Optimized", "0.0064", "3.9900", _EU),
    ServerType(93, "cax21", 4, 8, 80, "shared", "arm", "Cost-Optimized", "0.0104", "6.4900", _EU),
    ServerType(94, "cax31", 8, 16, 160, "shared", "arm", "Cost-Optimized", "0.0200", "12.4900", _EU),
    ServerType(96, "ccx13", 2, 8, 80, "dedicated", "x86", "General Purpose", "0.0224", "13.9900", _ALL),
)
SERVER_TYPES_BY_NAME = {st.name: st for st in SERVER_TYPES}


def _datacenters() -> tuple[Datacenter, ...]:
    numbers = {"fsn1": 14, "nbg1": 3, "hel1": 2, "ash": 1, "hil": 1, "sin": 1}
    out = []
    for loc in LOCATIONS:
        types = tuple(st.id for st in SERVER_TYPES if loc.name in st.location_names)
        name = f"{loc.name}-dc{numbers[loc.name]}"
        out.append(Datacenter(loc.id, name, f"{loc.city} DC {numbers[loc.name]}", loc, types))
    return tuple(out)


DATACENTERS = _datacenters()
DATACENTER_BY_LOCATION = {dc.location.name: dc for dc in DATACENTERS}
DATACENTERS_BY_NAME = {dc.name: dc for dc in DATACENTERS}
