"""Conformance of localcloud's answers with Hetzner's official OpenAPI document.

Every test using the ``cloud`` fixture already has its answers checked at teardown; this module
walks every endpoint once on purpose and proves that the checker itself catches violations.
"""

from __future__ import annotations

import json

import httpx
import pytest
from hcloud import Client

from localcloud.api.app import Exchange
from localcloud.server import LocalCloud

from .. import openapi_check
from ..conftest import TOKEN, new_keypair
from ..prereq import require
from .servers import make_server


@pytest.fixture(autouse=True)
def _spec() -> None:
    """Skip without Hetzner's OpenAPI document, saying why — but fail in CI, which has it."""
    if not openapi_check.spec_available():
        require(f"Hetzner's OpenAPI document is absent at {openapi_check.SPEC_PATH}")


def test_tour_of_every_endpoint_conforms(cloud: LocalCloud, client: Client) -> None:
    http = httpx.Client(base_url=cloud.endpoint + "/", headers={"Authorization": f"Bearer {TOKEN}"})
    r = make_server(client, "tour", labels={"a": "b"})
    sid = r.server.id
    key = client.ssh_keys.get_all()[0]
    calls = [
        ("GET", "ssh_keys", None), ("GET", f"ssh_keys/{key.id}", None), ("PUT", f"ssh_keys/{key.id}", {"labels": {"x": "y"}}),
        ("POST", "ssh_keys", {"name": "second", "public_key": new_keypair().public_openssh}),
        ("GET", "servers", None), ("GET", f"servers/{sid}", None), ("PUT", f"servers/{sid}", {"labels": {"c": "d"}}),
        ("GET", "server_types", None), ("GET", "server_types/108", None), ("GET", "locations", None),
        ("GET", "locations/1", None), ("GET", "datacenters", None), ("GET", "datacenters/1", None),
        ("GET", "images", None), ("GET", f"actions/{r.action.id}", None), ("GET", f"actions?id={r.action.id}", None),
        ("POST", f"servers/{sid}/actions/poweroff", {}),
    ]  # fmt: skip
    for method, path, body in calls:
        resp = http.request(method, path, json=body)
        assert resp.status_code < 300, (method, path, resp.text)
        if path.endswith("/poweroff"):
            client.actions.get_by_id(resp.json()["action"]["id"]).wait_until_finished()
    for action in ("poweron", "reboot", "reset", "shutdown"):
        resp = http.post(f"servers/{sid}/actions/{action}", json={})
        assert resp.status_code == 201, resp.text
        client.actions.get_by_id(resp.json()["action"]["id"]).wait_until_finished()
    snap = http.post(f"servers/{sid}/actions/create_image", json={"description": "d", "labels": {"k": "v"}}).json()
    client.actions.get_by_id(snap["action"]["id"]).wait_until_finished()
    assert http.put(f"images/{snap['image']['id']}", json={"description": "e"}).status_code == 200
    assert http.get(f"images/{snap['image']['id']}").status_code == 200
    assert http.delete(f"images/{snap['image']['id']}").status_code == 204
    assert http.delete(f"servers/{sid}").status_code == 200
    assert http.delete(f"ssh_keys/{key.id}").status_code == 204
    paths = {(e.method, e.path.split("/")[2]) for e in cloud.state.exchanges}
    assert {("GET", "servers"), ("POST", "servers"), ("DELETE", "images"), ("GET", "actions")} <= paths


def test_checker_catches_a_broken_answer(cloud: LocalCloud, client: Client) -> None:
    client.servers.get_by_id(make_server(client, "broken").server.id)
    good = next(e for e in cloud.state.exchanges if e.method == "GET" and e.path.startswith("/v1/servers/"))
    assert openapi_check.problems(good) == []
    body = json.loads(good.body)
    del body["server"]["datacenter"]
    body["server"]["status"] = "sleeping"
    broken = Exchange(good.method, good.path, good.query, good.status, good.content_type, json.dumps(body).encode())
    found = openapi_check.problems(broken)
    assert found
    assert "datacenter" in found[0] or "sleeping" in found[0]

    extra_key = json.loads(good.body)
    extra = Exchange("GET", "/v1/servers", "", 200, "application/json", json.dumps(
        {"servers": [], "meta": {"pagination": {"page": 1, "per_page": 25, "previous_page": None, "next_page": None,
                                                 "last_page": 1, "total_entries": 0, "surprise": 1}}}
    ).encode())  # fmt: skip
    assert any("pagination keys" in p for p in openapi_check.problems(extra))
    assert extra_key  # the good answer stays untouched
    empty_204_json = Exchange("DELETE", "/v1/ssh_keys/1", "", 204, "application/json", b"")
    assert openapi_check.problems(empty_204_json)
