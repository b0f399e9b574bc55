"""localcloud's /v1 API driven by the real hcloud SDK over HTTP (stub machines).

Every answer these tests receive is also checked against Hetzner's OpenAPI document by the
``cloud`` fixture's teardown.
"""

from __future__ import annotations

import re
import time

import httpx
import pytest
from hcloud import APIException, Client
from hcloud.images import Image
from hcloud.locations import Location
from hcloud.server_types import ServerType

from localcloud.server import LocalCloud

from ..conftest import TOKEN, KeyPair, new_keypair
from .servers import make_server

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def raw(cloud: LocalCloud, token: str | None = TOKEN) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=cloud.endpoint + "/", headers=headers, timeout=10)


# ---------------------------------------------------------------------------- ssh keys
def test_ssh_key_crud_filters_and_uniqueness(cloud: LocalCloud, client: Client, keypair: KeyPair) -> None:
    key = client.ssh_keys.create(name="one", public_key=keypair.public_openssh, labels={"team": "infra"})
    assert re.fullmatch(r"([0-9a-f]{2}:){15}[0-9a-f]{2}", key.fingerprint)
    other = client.ssh_keys.create(name="two", public_key=new_keypair().public_openssh)

    assert client.ssh_keys.get_by_id(key.id).name == "one"
    assert client.ssh_keys.get_by_name("two").id == other.id
    assert client.ssh_keys.get_by_fingerprint(key.fingerprint).id == key.id
    assert [k.id for k in client.ssh_keys.get_all(label_selector="team=infra")] == [key.id]
    by_name = raw(cloud).get("ssh_keys", params={"sort": "name:desc"}).json()["ssh_keys"]
    assert [k["name"] for k in by_name] == ["two", "one"]

    with pytest.raises(APIException) as dup_name:
        client.ssh_keys.create(name="one", public_key=new_keypair().public_openssh)
    assert dup_name.value.code == "uniqueness_error"
    with pytest.raises(APIException) as dup_fp:
        client.ssh_keys.create(name="three", public_key=keypair.public_openssh)
    assert dup_fp.value.code == "uniqueness_error"
    assert dup_fp.value.details == {"fields": [{"name": "public_key"}]}
    with pytest.raises(APIException) as bad:
        client.ssh_keys.create(name="bad", public_key="not a key")
    assert bad.value.code == "invalid_input"

    updated = client.ssh_keys.update(key, name="renamed", labels={"team": "platform"})
    assert (updated.name, updated.labels) == ("renamed", {"team": "platform"})
    assert client.ssh_keys.delete(key) is True
    with pytest.raises(APIException) as gone:
        client.ssh_keys.get_by_id(key.id)
    assert gone.value.code == "not_found"


def test_delete_answers_204_without_body(cloud: LocalCloud, client: Client, keypair: KeyPair) -> None:
    key = client.ssh_keys.create(name="k", public_key=keypair.public_openssh)
    r = raw(cloud).delete(f"ssh_keys/{key.id}")
    assert r.status_code == 204
    assert r.content == b""
    assert "json" not in r.headers.get("content-type", "")


# ---------------------------------------------------------------------------- servers
def test_server_create_shape_and_status_transitions(cloud: LocalCloud, client: Client) -> None:
    r = make_server(client, "node-1", wait=False, labels={"role": "build"})
    assert r.action.command == "create_server" and r.action.status == "running"
    assert [a.command for a in r.next_actions] == ["start_server"]
    assert r.root_password is None  # keys were given
    assert r.server.status == "initializing"
    seen = set()
    end = time.monotonic() + 10
    while time.monotonic() < end:
        s = client.servers.get_by_id(r.server.id)
        seen.add(s.status)
        if s.status == "running":
            break
        time.sleep(0.02)
    assert {"initializing", "starting", "running"} <= seen
    s = client.servers.get_by_id(r.server.id)
    assert s.locked is False
    assert re.fullmatch(r"127\.0\.\d+\.\d+", s.public_net.ipv4.ip)
    assert s.public_net.ipv6.ip.endswith("/64")
    assert s.server_type.name == "cpx22" and s.location.name == "fsn1" and s.image.name == "debian-12"
    assert s.labels == {"role": "build"}
    assert RFC3339.match(raw(cloud).get(f"servers/{s.id}").json()["server"]["created"])

    body = raw(cloud).get(f"servers/{s.id}").json()["server"]
    assert body["datacenter"]["location"]["name"] == "fsn1" and body["location"]["name"] == "fsn1"


def test_server_without_keys_gets_root_password_and_two_servers_get_distinct_ips(client: Client) -> None:
    r = client.servers.create(name="pw", server_type=ServerType(name="cx23"), image=Image(name="ubuntu-24.04"))
    assert r.root_password
    r2 = make_server(client, "other")
    r.action.wait_until_finished()
    assert (
        client.servers.get_by_id(r.server.id).public_net.ipv4.ip
        != client.servers.get_by_id(r2.server.id).public_net.ipv4.ip
    )


def test_server_create_validation(client: Client) -> None:
    def create(**kw: object) -> APIException:
        args: dict[str, object] = {
            "name": "x",
            "server_type": ServerType(name="cpx22"),
            "image": Image(name="debian-12"),
        }
        args.update(kw)
        with pytest.raises(APIException) as e:
            client.servers.create(**args)
        return e.value

    assert create(server_type=ServerType(name="cx99")).details["fields"][0]["name"] == "server_type"
    assert create(image=Image(name="windows-11")).details["fields"][0]["name"] == "image"
    assert create(location=Location(name="mars1")).details["fields"][0]["name"] == "location"
    assert create(name="not_a_hostname!").details["fields"][0]["name"] == "name"
    assert create(labels={"k": "v+1"}).details["fields"][0]["name"] == "labels"
    # arm server type with an image only known for x86 by id
    x86_debian = client.images.get_by_name_and_architecture("debian-12", "x86")
    assert create(server_type=ServerType(name="cax11"), image=Image(id=x86_debian.id)).code == "invalid_input"
    # cx23 is EU only
    assert create(server_type=ServerType(name="cx23"), location=Location(name="ash")).code == "unsupported_error"

    make_server(client, "taken")
    assert create(name="taken").code == "uniqueness_error"


def test_server_list_filters_sort_and_update(cloud: LocalCloud, client: Client) -> None:
    for n in ("b-node", "a-node", "c-node"):
        make_server(client, n, labels={"pool": "x" if n != "c-node" else "y"})

    def names(sort: str) -> list[str]:
        return [s["name"] for s in raw(cloud).get("servers", params={"sort": sort}).json()["servers"]]

    assert names("name") == ["a-node", "b-node", "c-node"]
    assert names("name:desc") == ["c-node", "b-node", "a-node"]
    assert {s.name for s in client.servers.get_all(label_selector="pool=x")} == {"a-node", "b-node"}
    assert {s.name for s in client.servers.get_all(label_selector="pool notin (x)")} == {"c-node"}
    assert [s.name for s in client.servers.get_all(name="b-node")] == ["b-node"]
    assert len(client.servers.get_all(status=["running"])) == 3
    assert client.servers.get_all(status=["off"]) == []
    s = client.servers.get_by_name("a-node")
    s = client.servers.update(s, labels={"pool": "z"}, name="z-node")
    assert (s.name, s.labels) == ("z-node", {"pool": "z"})
    bogus = raw(cloud).get("servers", params={"sort": "bogus"})
    assert bogus.status_code == 422 and bogus.json()["error"]["code"] == "invalid_input"


def test_power_actions_and_locking(cloud: LocalCloud, client: Client) -> None:
    s = make_server(client, "power").server
    poweroff = client.servers.power_off(s)
    assert poweroff.command == "stop_server"
    # Another action on the same server while one runs: 423 locked.
    with pytest.raises(APIException) as locked:
        client.servers.power_on(s)
    assert locked.value.code == "locked"
    assert client.servers.get_by_id(s.id).status == "stopping"
    poweroff.wait_until_finished()
    assert client.servers.get_by_id(s.id).status == "off"

    on = client.servers.power_on(s)
    assert on.command == "start_server"
    on.wait_until_finished()
    assert client.servers.get_by_id(s.id).status == "running"
    for fn, cmd in ((client.servers.reboot, "reboot_server"), (client.servers.reset, "reset_server")):
        a = fn(s)
        assert a.command == cmd
        a.wait_until_finished()
        assert client.servers.get_by_id(s.id).status == "running"


def test_acpi_shutdown_finishes_before_the_guest_is_off(client: Client) -> None:
    s = make_server(client, "acpi").server
    a = client.servers.shutdown(s)
    assert a.command == "shutdown_server"
    a.wait_until_finished()
    # The action only pressed the button; the guest takes its time (guest_shutdown).
    assert client.servers.get_by_id(s.id).status == "running"
    end = time.monotonic() + 5
    while client.servers.get_by_id(s.id).status != "off":
        assert time.monotonic() < end, "guest never powered off"
        time.sleep(0.05)


def test_create_image_lifecycle_and_image_filters(cloud: LocalCloud, client: Client) -> None:
    s = make_server(client, "snap-src").server
    r = client.servers.create_image(s, description="node image", type="snapshot", labels={"caph-image-name": "x"})
    assert r.image.status == "creating" and r.image.name is None
    assert r.action.command == "create_image"
    assert {res["type"] for res in r.action.resources} == {"server", "image"}
    with pytest.raises(APIException) as busy:
        client.images.delete(r.image)
    assert busy.value.code == "locked"
    r.action.wait_until_finished()
    img = client.images.get_by_id(r.image.id)
    assert (img.status, img.type, img.description) == ("available", "snapshot", "node image")
    assert img.created_from.id == s.id
    assert img.architecture == "x86" and img.disk_size == 80

    assert [i.id for i in client.images.get_all(type=["snapshot"])] == [img.id]
    assert [i.id for i in client.images.get_all(label_selector="caph-image-name==x")] == [img.id]
    assert client.images.get_all(label_selector="caph-image-name=y") == []
    systems = client.images.get_all(type=["system"], architecture=["arm"])
    assert systems and all(i.architecture == "arm" for i in systems)
    assert client.images.get_by_name_and_architecture("ubuntu-24.04", "arm").architecture == "arm"
    newest_first = client.images.get_all(sort=["created:desc", "id:desc"])
    assert newest_first[0].id == img.id
    # hcloud-python sends the status filter wrongly (status=<per_page>); a clear 422 beats a
    # silently ignored filter.
    resp = raw(cloud).get("images", params={"status": "50"})
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "invalid_input"
    assert (
        raw(cloud).get("images", params={"status": "available", "type": "snapshot"}).json()["images"][0]["id"] == img.id
    )

    updated = client.images.update(img, description="renamed", labels={"caph-image-name": "y"})
    assert (updated.description, updated.labels) == ("renamed", {"caph-image-name": "y"})
    system = client.images.get_by_name_and_architecture("debian-12", "x86")
    with pytest.raises(APIException) as forbidden:
        client.images.delete(system)
    assert forbidden.value.code == "forbidden"
    assert client.images.delete(img) is True
    assert client.images.get_all(type=["snapshot"]) == []


def test_delete_server_goes_through_deleting(client: Client) -> None:
    s = make_server(client, "doomed").server
    a = client.servers.delete(s)
    assert a.command == "delete_server"
    assert client.servers.get_by_id(s.id).status == "deleting"
    a.wait_until_finished()
    with pytest.raises(APIException) as e:
        client.servers.get_by_id(s.id)
    assert e.value.code == "not_found"


# ---------------------------------------------------------------------------- actions & catalog
def test_actions_get_and_list_by_id(cloud: LocalCloud, client: Client) -> None:
    r = make_server(client, "acts")
    ids = [r.action.id, r.next_actions[0].id]
    a = client.actions.get_by_id(ids[0])
    assert (a.status, a.progress, a.command) == ("success", 100, "create_server")
    assert RFC3339.match(raw(cloud).get(f"actions/{ids[0]}").json()["action"]["finished"])
    listed = raw(cloud).get("actions", params=[("id", ids[0]), ("id", ids[1]), ("sort", "id:desc")]).json()
    assert [x["id"] for x in listed["actions"]] == sorted(ids, reverse=True)
    assert raw(cloud).get("actions").status_code == 422  # id is required


def test_running_action_reports_progress(cloud_settings, client: Client) -> None:
    s = make_server(client, "slow").server
    r = client.servers.create_image(s)
    first = client.actions.get_by_id(r.action.id)
    assert first.status == "running" and 0 <= first.progress < 100
    r.action.wait_until_finished()


def test_catalog(client: Client) -> None:
    types = {t.name: t for t in client.server_types.get_all()}
    assert {"cx23", "cpx22", "cpx32", "cax11"} <= set(types)
    assert types["cax11"].architecture == "arm" and types["cpx22"].architecture == "x86"
    assert types["cpx22"].disk == 80
    assert client.server_types.get_by_name("cpx32").cores == 4
    assert {loc.name for loc in client.locations.get_all()} >= {"fsn1", "nbg1", "hel1"}
    assert client.locations.get_by_name("nbg1").network_zone == "eu-central"
    dcs = client.datacenters.get_all()
    assert all(dc.location is not None for dc in dcs)
    assert client.server_types.get_by_id(types["cx23"].id).name == "cx23"


# ---------------------------------------------------------------------------- protocol
def test_pagination_meta_and_per_page_cap(cloud: LocalCloud, client: Client) -> None:
    for i in range(53):
        client.ssh_keys.create(name=f"k{i:02}", public_key=new_keypair().public_openssh)
    page = raw(cloud).get("ssh_keys", params={"per_page": 100}).json()
    assert len(page["ssh_keys"]) == 50
    assert page["meta"]["pagination"] == {
        "page": 1, "per_page": 50, "previous_page": None, "next_page": 2, "last_page": 2, "total_entries": 53,
    }  # fmt: skip
    last = raw(cloud).get("ssh_keys", params={"per_page": 50, "page": 2})
    assert last.json()["meta"]["pagination"]["next_page"] is None
    assert 'rel="prev"' in last.headers["link"]
    assert len(client.ssh_keys.get_all()) == 53  # the SDK follows next_page


def test_errors_envelope(cloud: LocalCloud) -> None:
    http = raw(cloud)
    nf = http.get("servers/123")
    assert nf.status_code == 404 and nf.json()["error"]["code"] == "not_found"
    assert http.get("no_such_resource").json()["error"]["code"] == "not_found"
    bad_json = http.post("ssh_keys", content=b"{nope", headers={"Content-Type": "application/json"})
    assert bad_json.status_code == 400 and bad_json.json()["error"]["code"] == "json_error"
    missing = http.post("ssh_keys", json={"name": "x"})
    assert missing.status_code == 422
    assert missing.json()["error"]["details"]["fields"][0]["name"] == "public_key"
    wrong_method = http.patch("servers")
    assert wrong_method.status_code == 405 and wrong_method.json()["error"]["code"] == "method_not_allowed"
    sel = http.get("servers", params={"label_selector": "a in (b"})
    assert sel.status_code == 422 and sel.json()["error"]["details"]["fields"][0]["name"] == "label_selector"


def test_auth_required(cloud: LocalCloud) -> None:
    r = raw(cloud, token=None).get("servers")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    r = httpx.get(cloud.endpoint + "/servers", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert r.status_code == 401


@pytest.fixture
def allow_list_settings(cloud_settings):
    cloud_settings["tokens"] = frozenset({"good-token"})
    return cloud_settings


def test_token_allow_list(allow_list_settings, cloud: LocalCloud) -> None:
    good = Client(token="good-token", api_endpoint=cloud.endpoint, timeout=10)
    assert good.server_types.get_all()
    with pytest.raises(APIException) as e:
        Client(token="other", api_endpoint=cloud.endpoint, timeout=10).servers.get_all()
    assert e.value.code == "unauthorized"


@pytest.fixture
def tiny_budget(cloud_settings):
    cloud_settings["rate_limit"] = 5
    cloud_settings["rate_refill"] = 0.5
    return cloud_settings


def test_rate_limit_headers_and_429(tiny_budget, cloud: LocalCloud) -> None:
    http = raw(cloud)
    remaining = []
    for _ in range(5):
        r = http.get("locations")
        assert r.status_code == 200
        assert r.headers["RateLimit-Limit"] == "5"
        remaining.append(int(r.headers["RateLimit-Remaining"]))
        assert int(r.headers["RateLimit-Reset"]) >= int(time.time())
    assert remaining == sorted(remaining, reverse=True) and remaining[-1] <= 1
    over = http.get("locations")
    assert over.status_code == 429 and over.json()["error"]["code"] == "rate_limit_exceeded"
    assert over.headers["RateLimit-Remaining"] == "0"
    time.sleep(2.2)  # refill 0.5/s: one request is allowed again
    assert http.get("locations").status_code == 200


def test_every_request_is_logged(cloud: LocalCloud, client: Client) -> None:
    admin = cloud.admin()
    admin.clear_requests()
    client.server_types.get_all()
    with pytest.raises(APIException):
        client.servers.get_by_id(1)
    log = admin.requests()
    assert [(r["method"], r["path"], r["status"]) for r in log] == [
        ("GET", "/v1/server_types", 200),
        ("GET", "/v1/servers/1", 404),
    ]
    assert all(r["time"] > 0 and r["duration_ms"] >= 0 for r in log)


def test_state_dump_and_reset(cloud: LocalCloud, client: Client) -> None:
    make_server(client, "dumped")
    state = cloud.admin().state()
    assert [s["name"] for s in state["servers"]] == ["dumped"]
    assert len(state["ssh_keys"]) == 1 and state["actions"]
    assert state["rate_limit"]["limit"] == 3600
    cloud.admin().reset()
    state = cloud.admin().state()
    assert state["servers"] == [] and state["ssh_keys"] == [] and state["actions"] == []
    assert any(i["type"] == "system" for i in state["images"])


def test_malformed_input_is_a_client_error_never_a_500(cloud: LocalCloud, client: Client) -> None:
    """Adversarial bodies, ids and parameters: Hetzner's client-error codes, nothing echoed."""
    http = raw(cloud)
    nested = b"[" * 100_000 + b"]" * 100_000
    r = http.post("ssh_keys", content=nested, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "json_error"
    r = http.get("servers/" + "9" * 5000)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = http.get("servers/" + "9" * 19)  # int64-sized: a normal look-up
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    for params in ({"page": 0}, {"per_page": 0}, {"page": 2**64}, {"page": "9" * 5000}, {"per_page": -1}):
        r = http.get("ssh_keys", params=params)
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_input", params
    r = http.get("ssh_keys", params={"name": "x" * 20_000})
    assert r.status_code in (414, 422) and "link" not in r.headers
    for bad in ("ssh-ed25519 AAAA", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5", "ssh-rsa AAAAB3NzaC1yc2E="):
        r = http.post("ssh_keys", json={"name": "bad", "public_key": bad})
        assert r.status_code == 422 and r.json()["error"]["details"]["fields"][0]["name"] == "public_key", bad
    assert client.ssh_keys.get_all() == []


def test_unusable_host_key_in_user_data_gives_another_host_key(cloud: LocalCloud, client: Client) -> None:
    """As cloud-init with a key it cannot use: the server runs, the pinned key does not match."""
    user_data = "#cloud-config\nssh_keys:\n  ed25519_private: |\n    -----BEGIN OPENSSH PRIVATE KEY-----\n    garbage\n"
    r = make_server(client, "badhost", user_data=user_data)
    assert client.servers.get_by_id(r.server.id).status == "running"


@pytest.mark.parametrize("header", [b"\xff\xfe", b"caf\xe9", b"\xc3\x28"], ids=["ff-fe", "latin1", "bad-utf8"])
def test_a_non_utf8_header_byte_is_never_a_500(cloud: LocalCloud, header: bytes) -> None:
    """Before: a plain-text 500 for any non-UTF-8 byte in a header on /v1."""
    import http.client
    import urllib.parse

    url = urllib.parse.urlsplit(cloud.endpoint)
    for auth in (f"Bearer {TOKEN}".encode(), b"Bearer \xff"):
        conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
        conn.putrequest("GET", f"{url.path}/servers?label_selector=a%3D%FF")
        conn.putheader("Authorization", auth)
        conn.putheader("X-Odd", header)
        conn.endheaders()
        response = conn.getresponse()
        body = response.read()
        conn.close()
        assert response.status < 500, (response.status, body[:200])
        assert response.getheader("Content-Type", "").startswith("application/json"), body[:200]


def test_random_bytes_through_every_route_never_500_or_hang(cloud: LocalCloud) -> None:
    """A seeded property test: every /v1 route, with random bytes in the id, the query, a header
    and the body; each answer comes within the timeout, as JSON, below 500."""
    import http.client
    import random
    import urllib.parse

    from localcloud.api.routes import ROUTES

    rng = random.Random(22)
    url = urllib.parse.urlsplit(cloud.endpoint)
    for route in ROUTES:
        for method in sorted(route.methods or {"GET"}):
            if method == "HEAD":
                continue
            for _ in range(6):
                junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
                path = route.path.replace("{id:hid}", rng.choice(["1", "99999999999", "0"])).replace(
                    "{action}", rng.choice(["poweron", "nope", "create_image"])
                )
                query = urllib.parse.quote_from_bytes(junk)
                conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
                conn.putrequest(method, f"{url.path}{path}?label_selector={query}&page={query[:5]}")
                conn.putheader("Authorization", f"Bearer {TOKEN}")
                # Control bytes in a header are refused by the HTTP server itself (h11's 400);
                # every other byte reaches the app.
                conn.putheader("X-Junk", bytes(b for b in junk if b >= 0x20 and b != 0x7F) or b"x")
                conn.putheader("Content-Length", str(len(junk)))
                conn.endheaders(junk)
                response = conn.getresponse()
                body = response.read()
                conn.close()
                where = (method, path, junk)
                assert response.status < 500, (where, response.status, body[:200])
                assert response.status == 204 or body.startswith(b"{"), (where, body[:200])
