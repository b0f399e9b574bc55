"""Fault rules from the admin API, observed through the real hcloud SDK."""

from __future__ import annotations

import httpx
import pytest
import requests
from hcloud import APIException, Client
from hcloud.actions import ActionFailedException
from hcloud.images import Image
from hcloud.server_types import ServerType

from localcloud.server import LocalCloud

from ..conftest import KeyPair
from .servers import make_server


def create(client: Client, name: str) -> object:
    return client.servers.create(name=name, server_type=ServerType(name="cpx22"), image=Image(name="debian-12"))


def names(client: Client) -> list[str]:
    return sorted(s.name for s in client.servers.get_all())


def test_error_rule_fires_once_then_the_call_works(cloud: LocalCloud, client: Client) -> None:
    admin = cloud.admin()
    rule = admin.add_fault(method="POST", path=r"^/v1/servers$", code="unavailable", message="maintenance window")
    assert rule["status"] == 503
    with pytest.raises(APIException) as e:
        create(client, "a")
    assert e.value.code == "unavailable" and "maintenance window" in e.value.message
    assert names(client) == []
    create(client, "a")
    assert names(client) == ["a"]
    [listed] = admin.faults()
    assert (listed["seen"], listed["fired"]) == (2, 1)
    log = [r for r in admin.requests() if r["path"] == "/v1/servers" and r["method"] == "POST"]
    assert [(r["status"], r["fault"]) for r in log] == [(503, rule["id"]), (201, None)]


def test_nth_and_times(cloud: LocalCloud, client: Client) -> None:
    admin = cloud.admin()
    admin.add_fault(method="GET", path=r"^/v1/locations$", nth=2, times=2, code="server_error")
    outcomes = []
    for _ in range(5):
        try:
            client.locations.get_list()
            outcomes.append("ok")
        except APIException as e:
            outcomes.append(str(e.code))
    assert outcomes == ["ok", "server_error", "server_error", "ok", "ok"]


def test_forever_rule_and_clear(cloud: LocalCloud, client: Client) -> None:
    admin = cloud.admin()
    admin.add_fault(method="*", path=r"/v1/ssh_keys", times=0, code="locked")
    for _ in range(3):
        with pytest.raises(APIException) as e:
            client.ssh_keys.get_all()
        assert e.value.code == "locked"
    admin.clear_faults()
    assert client.ssh_keys.get_all() == []


def test_bare_error_without_json_body(cloud: LocalCloud, client: Client) -> None:
    cloud.admin().add_fault(method="GET", path=r"^/v1/server_types$", status=429, bare=True, message="slow down")
    with pytest.raises(APIException) as e:
        client.server_types.get_all()
    assert e.value.code == 429  # hcloud-python reports the HTTP status when there is no JSON error


def test_conflict_is_retried_by_the_sdk(cloud: LocalCloud, client: Client) -> None:
    cloud.admin().add_fault(method="GET", path=r"^/v1/locations$", code="conflict")
    assert client.locations.get_all()  # hcloud-python retries `conflict` by itself


def test_drop_before_handling(cloud: LocalCloud, client: Client) -> None:
    cloud.admin().add_fault(method="POST", path=r"^/v1/servers$", kind="drop")
    with pytest.raises(requests.ConnectionError):
        create(client, "never")
    assert names(client) == []


def test_drop_after_handling(cloud: LocalCloud, client: Client) -> None:
    """The call takes effect but its answer is lost: the client cannot tell, a retry collides."""
    cloud.admin().add_fault(method="POST", path=r"^/v1/servers$", kind="drop_after")
    with pytest.raises(requests.ConnectionError):
        create(client, "ghost")
    assert names(client) == ["ghost"]
    with pytest.raises(APIException) as e:
        create(client, "ghost")
    assert e.value.code == "uniqueness_error"


def test_action_error_on_create_image_removes_the_image(cloud: LocalCloud, client: Client) -> None:
    server = make_server(client, "snapper").server
    cloud.admin().add_fault(method="POST", path=r"/actions/create_image$", kind="action_error")
    r = client.servers.create_image(server, description="doomed")
    with pytest.raises(ActionFailedException) as e:
        r.action.wait_until_finished()
    assert e.value.action.error["code"] == "action_failed"
    assert client.actions.get_by_id(r.action.id).status == "error"
    assert client.images.get_all(type=["snapshot"]) == []
    assert client.servers.get_by_id(server.id).locked is False


def test_action_error_on_create_leaves_a_server_to_clean_up(
    cloud: LocalCloud, client: Client, keypair: KeyPair
) -> None:
    cloud.admin().add_fault(method="POST", path=r"^/v1/servers$", kind="action_error", message="host failure")
    r = client.servers.create(name="half", server_type=ServerType(name="cpx22"), image=Image(name="debian-12"))
    with pytest.raises(ActionFailedException, match="host failure"):
        r.action.wait_until_finished()
    s = client.servers.get_by_id(r.server.id)
    assert s.status == "off" and not s.locked  # it exists and costs money until deleted
    client.servers.delete(s).wait_until_finished()
    assert names(client) == []


def test_action_error_on_poweroff_keeps_server_running(cloud: LocalCloud, client: Client) -> None:
    server = make_server(client, "stubborn").server
    cloud.admin().add_fault(method="POST", path=r"/actions/poweroff$", kind="action_error")
    a = client.servers.power_off(server)
    with pytest.raises(ActionFailedException):
        a.wait_until_finished()
    assert client.servers.get_by_id(server.id).status == "running"


def test_admin_rejects_bad_rules_and_deletes_one(cloud: LocalCloud) -> None:
    http = httpx.Client(base_url=cloud.base_url + "/__localcloud")
    assert http.post("/faults", json={"path": "("}).status_code == 422
    assert http.post("/faults", json={"path": "x", "kind": "explode"}).status_code == 422
    assert http.post("/faults", json={"path": "x", "surprise": 1}).status_code == 422
    rule = cloud.admin().add_fault(path="x")
    assert http.delete(f"/faults/{rule['id']}").status_code == 204
    assert http.delete(f"/faults/{rule['id']}").status_code == 404
    assert cloud.admin().faults() == []
