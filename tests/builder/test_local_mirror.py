"""localcloud serves its artifact mirror itself; a project naming ``localcloud`` as its mirror
finds it through the admin API in preflight, and a missing or mismatched mirror is bad input
(exit 2) before anything is created."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from builder.config import REPO_ROOT, config_dir
from builder.localmirror import MirrorUnavailableError, lookup
from localcloud.artifacts import MirrorError, mirror_metadata, mirror_root, populate_mirror
from localcloud.server import LocalCloud
from provision.versions import load_versions

from ..buildkit import BUILD_TIMES, STUB_PROJECT, VERSIONS, build_command, run_cli, write_project
from ..conftest import require_mirror
from ..localclouds import LocalClouds

LOCAL_VARS = config_dir() / "vars" / "k8s-1.31-localcloud.json"
DEBIAN12_VARS = config_dir() / "vars" / "k8s-1.31-localcloud-debian12.json"
MIRRORED = STUB_PROJECT.replace("os: ubuntu-2404", "os: debian-13").replace(str(VERSIONS), str(LOCAL_VARS)) + (
    "provision:\n  artifacts:\n    mirror: localcloud\n  registry_mirror:\n    url: localcloud\n"
)


@pytest.fixture
def mirrored_cloud(localclouds: LocalClouds) -> LocalCloud:
    require_mirror()
    return localclouds.start(action_times=BUILD_TIMES)


@pytest.fixture
def bare_cloud(tmp_path: Path, localclouds: LocalClouds) -> LocalCloud:
    """A localcloud whose cache has no mirror."""
    return localclouds.start(action_times=BUILD_TIMES, cache_dir=tmp_path / "cache")


def mutating(lc: LocalCloud) -> list[str]:
    return [f"{r['method']} {r['path']}" for r in lc.admin().requests() if r["method"] != "GET"]


def test_the_admin_api_says_where_the_mirror_is_and_serves_it(mirrored_cloud: LocalCloud) -> None:
    info = mirrored_cloud.admin().mirror()
    assert info["populated"] is True and info["reachable_from_vms"] is True
    assert info["guest_url"] == f"http://10.0.2.2:{mirrored_cloud.port}/__localcloud/mirror/files"
    assert info["artifacts"]["containerd_url"] == info["guest_url"] + "/containerd"
    # The committed local var files name exactly what the mirror serves, one per node shape.
    for var_file in (LOCAL_VARS, DEBIAN12_VARS):
        assert info["var_files"][var_file.name] == json.loads(var_file.read_text())
    assert info["versions"]["containerd_version"] == ["1.6.20", "2.1.9"]
    assert set(info["debian_packages"]["bookworm"]) == {"containerd", "runc", "containernetworking-plugins"}
    assert set(info["debian_packages"]["unstable"]) == {"containerd", "runc"}
    assert info["standins"] == ["kubelet", "kubeadm", "kubectl", "crictl"]
    assert info["images"]["registry.k8s.io/pause:3.10"] in ("static pause", "stand-in")

    files = httpx.Client(base_url=info["host_url"] + "/", timeout=30)
    name = "containerd-1.6.20-linux-amd64.tar.gz"
    tarball = files.get(f"containerd/v1.6.20/{name}")
    assert tarball.status_code == 200
    assert (
        files.get(f"containerd/v1.6.20/{name}.sha256sum").text
        == f"{hashlib.sha256(tarball.content).hexdigest()}  {name}\n"
    )
    kubelet = files.get("k8s/v1.31.4/bin/linux/amd64/kubelet").text
    assert kubelet.splitlines()[1].startswith("# STANDIN kubelet")  # a stand-in says so
    assert files.get("../../images/debian-12-x86/image.json").status_code == 404
    assert files.get("%2e%2e/%2e%2e/kvm-probe.json").status_code == 404


def test_a_build_finds_the_mirror_through_the_endpoint(mirrored_cloud: LocalCloud, tmp_path: Path) -> None:
    r = run_cli(build_command(tmp_path), _project(tmp_path, MIRRORED), mirrored_cloud.endpoint)
    assert r.returncode == 0, r.stderr[-2000:]
    manifest = json.loads((tmp_path / "m.json").read_text())
    assert manifest["local_mirror"]["url"] == mirrored_cloud.admin().mirror()["guest_url"]


def test_an_unpopulated_mirror_is_refused_before_spending(bare_cloud: LocalCloud, tmp_path: Path) -> None:
    r = run_cli(build_command(tmp_path), _project(tmp_path, MIRRORED), bare_cloud.endpoint)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "artifact mirror is not populated" in r.stderr
    assert "make artifacts" in r.stderr
    assert mutating(bare_cloud) == []


def test_versions_the_mirror_does_not_serve_are_refused(mirrored_cloud: LocalCloud, tmp_path: Path) -> None:
    r = run_cli(build_command(tmp_path), _project(tmp_path, MIRRORED.replace(str(LOCAL_VARS), str(VERSIONS))),
                mirrored_cloud.endpoint)  # fmt: skip
    assert r.returncode == 2, r.stderr[-2000:]
    assert "containerd_version 2.2.0 (the mirror has 1.6.20 or 2.1.9)" in r.stderr
    assert "k8s-1.31-localcloud.json" in r.stderr
    assert mutating(mirrored_cloud) == []


def test_an_endpoint_that_is_no_localcloud_is_named() -> None:
    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_error(404)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}/v1"
        with pytest.raises(MirrorUnavailableError, match="is not a localcloud"):
            lookup(endpoint, load_versions(LOCAL_VARS), "x86")
    finally:
        server.shutdown()
    with pytest.raises(MirrorUnavailableError, match="did not answer"):
        lookup("http://127.0.0.1:9/v1", load_versions(LOCAL_VARS), "x86", timeout=2)


def test_an_unpopulatable_mirror_says_what_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """apt-get really runs, with no package source at all (a machine without Debian's archive)."""
    lists = tmp_path / "lists"
    (lists / "partial").mkdir(parents=True)
    apt_conf = tmp_path / "apt.conf"
    apt_conf.write_text(
        f'Dir::Etc::sourcelist "/dev/null";\nDir::Etc::sourceparts "{tmp_path}/none";\n'
        f'Dir::State::lists "{lists}";\nDir::Cache "{tmp_path}/cache";\n'
    )
    monkeypatch.setenv("APT_CONFIG", str(apt_conf))
    with pytest.raises(MirrorError) as err:
        populate_mirror(tmp_path / "localcloud-cache")
    message = str(err.value)
    assert "could not download containerd, runc, containernetworking-plugins from the host's Debian archive" in message
    assert "make artifacts" in message
    assert mirror_metadata(mirror_root(tmp_path / "localcloud-cache")) is None


def test_the_plan_of_the_local_project_shows_where_the_mirror_will_be() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "builder.cli", "plan", "-p", "local", "-o", "json"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    text = r.stdout
    assert (
        "http://10.0.2.2:PORT/__localcloud/mirror/files/containerd/v2.1.9/containerd-2.1.9-linux-amd64.tar.gz" in text
    )
    assert "URIs: http://10.0.2.2:PORT/__localcloud/mirror/files/pkgs/core:/stable:/v1.31/deb/" in text
    assert '[host.\\"http://10.0.2.2:PORT/__localcloud/mirror/files/registry/v2/proxy-docker.io\\"]' in text


def _project(tmp: Path, text: str) -> Path:
    write_project(tmp / "config", "p", text)
    return tmp / "config"


def test_the_shipped_local_project_builds_against_an_external_localcloud(tmp_path: Path) -> None:
    """``HCLOUD_ENDPOINT`` naming a running ``python -m localcloud serve``: the local project,
    unchanged, asks that server for its mirror (stub machines; the lifecycle only)."""
    require_mirror()
    serve = subprocess.Popen(
        [sys.executable, "-m", "localcloud", "serve", "--action-time", "create_image=0.2"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert serve.stdout is not None
        endpoint = serve.stdout.readline().strip()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HCLOUD_", "CAPI_IMAGE_"))}
        r = subprocess.run(
            [sys.executable, "-m", "builder.cli", "build", "-p", "local", "--recipe", "minimal", "--no-boot-test",
             "--log-format", "json", "--manifest", str(tmp_path / "m.json")],
            env={**env, "HCLOUD_ENDPOINT": endpoint}, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        guest_url = httpx.get(endpoint.removesuffix("/v1") + "/__localcloud/mirror").json()["guest_url"]
    finally:
        serve.terminate()
        serve.wait(timeout=30)
    assert r.returncode == 0, r.stderr[-2000:]
    manifest = json.loads((tmp_path / "m.json").read_text())
    assert manifest["project"] == "local"
    assert manifest["local_mirror"]["url"] == guest_url
