"""JSON shapes of the domain objects, exactly as Hetzner's OpenAPI document describes them."""

from __future__ import annotations

from typing import Any

from .catalog import DATACENTER_BY_LOCATION
from .models import Action, Image, Server, SSHKey, rfc3339


def action_json(a: Action) -> dict[str, Any]:
    return {
        "id": a.id,
        "command": a.command,
        "status": a.status,
        "progress": a.progress,
        "started": rfc3339(a.started),
        "finished": rfc3339(a.finished),
        "resources": [{"id": rid, "type": rtype} for rid, rtype in a.resources],
        "error": a.error,
    }


def ssh_key_json(k: SSHKey) -> dict[str, Any]:
    return {
        "id": k.id,
        "name": k.name,
        "fingerprint": k.fingerprint,
        "public_key": k.public_key,
        "labels": dict(k.labels),
        "created": rfc3339(k.created),
    }


def image_json(i: Image) -> dict[str, Any]:
    return {
        "id": i.id,
        "type": i.type,
        "status": i.status,
        "name": i.name,
        "description": i.description,
        "image_size": i.image_size,
        "disk_size": i.disk_size,
        "created": rfc3339(i.created),
        "created_from": i.created_from,
        "bound_to": i.bound_to,
        "os_flavor": i.os_flavor,
        "os_version": i.os_version,
        "rapid_deploy": False,
        "protection": {"delete": i.protection_delete},
        "deprecated": rfc3339(i.deprecated),
        "deleted": None,
        "labels": dict(i.labels),
        "architecture": i.architecture,
    }


def server_json(s: Server, image: Image | None) -> dict[str, Any]:
    dc = DATACENTER_BY_LOCATION[s.location.name]
    return {
        "id": s.id,
        "name": s.name,
        "status": s.status,
        "created": rfc3339(s.created),
        "public_net": {
            "ipv4": {"id": s.id, "ip": s.ipv4, "blocked": False, "dns_ptr": f"static.{s.ipv4}.clients.localcloud"},
            "ipv6": {"id": s.id, "ip": s.ipv6_net, "blocked": False, "dns_ptr": []},
            "floating_ips": [],
            "firewalls": [],
        },
        "private_net": [],
        "server_type": s.server_type.to_json(),
        "datacenter": dc.to_json(),
        "location": s.location.to_json(),
        "image": image_json(image) if image is not None else None,
        "iso": None,
        "rescue_enabled": False,
        "locked": s.locked,
        "backup_window": None,
        "outgoing_traffic": 0,
        "ingoing_traffic": 0,
        "included_traffic": s.server_type.included_traffic,
        "protection": {"delete": s.protection_delete, "rebuild": s.protection_rebuild},
        "labels": dict(s.labels),
        "volumes": [],
        "load_balancers": [],
        "primary_disk_size": s.server_type.disk,
        "placement_group": None,
    }
