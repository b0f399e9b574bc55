"""What localcloud's artifact mirror serves for the production shape, checked with real clients
where they exist: the pkgs.k8s.io-shaped apt repository through Debian's own ``apt-get`` (the
signature verified with the published key, a tampered index refused), the registry through the
OCI distribution routes a containerd pulls with (digests, media types, diff_ids, the pull log),
the static pause and containerd's own units."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from localcloud.artifacts import APT_PATH, SERIES, VAR_FILES, mirror_root
from localcloud.paths import default_cache_dir
from localcloud.server import LocalCloud
from provision.steps.containerd import containerd_unit

from ..conftest import require_mirror
from ..localclouds import LocalClouds

REPO = APT_PATH.format(series=SERIES)


@pytest.fixture
def mirror(localclouds: LocalClouds) -> LocalCloud:
    require_mirror()
    return localclouds.start()


def _apt(
    tmp: Path, repo_url: str, keyring: Path, *args: str, tool: str = "apt-get"
) -> subprocess.CompletedProcess[str]:
    """Debian's apt-get (or apt-cache), with a private configuration naming only ``repo_url`` (flat, signed)."""
    (tmp / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (tmp / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    (tmp / "sources.list").write_text(f"deb [signed-by={keyring}] {repo_url} /\n")
    conf = [
        "-o", f"Dir::Etc::SourceList={tmp / 'sources.list'}", "-o", "Dir::Etc::SourceParts=/nonexistent",
        "-o", f"Dir::State::Lists={tmp / 'lists'}", "-o", f"Dir::Cache={tmp / 'cache'}",
        "-o", "Dir::State::status=/dev/null", "-o", "APT::Architecture=amd64", "-o", "APT::Sandbox::User=root",
    ]  # fmt: skip
    return subprocess.run([tool, *conf, *args], cwd=tmp, capture_output=True, text=True, timeout=120)


def _keyring(tmp: Path, armored: bytes) -> Path:
    keyring = tmp / "kubernetes-apt-keyring.gpg"
    subprocess.run(["gpg", "--batch", "--yes", "--dearmor", "-o", str(keyring)], input=armored, check=True)
    return keyring


def test_apt_installs_from_the_signed_repository_with_the_published_key(mirror: LocalCloud, tmp_path: Path) -> None:
    info = mirror.admin().mirror()
    repo_url = f"{info['host_url']}/{REPO}"
    keyring = _keyring(tmp_path, httpx.get(f"{repo_url}Release.key").content)
    r = _apt(tmp_path, repo_url, keyring, "update")
    assert r.returncode == 0 and "W:" not in r.stderr and "E:" not in r.stderr, r.stdout + r.stderr
    deb_version = VAR_FILES["k8s-1.31-localcloud.json"]["kubernetes_deb_version"]
    for package in ("kubelet", "kubeadm", "kubectl"):
        shown = _apt(tmp_path, repo_url, keyring, "show", f"{package}={deb_version}", tool="apt-cache")
        assert shown.returncode == 0, shown.stderr
    kubeadm = _apt(tmp_path, repo_url, keyring, "show", "kubeadm", tool="apt-cache").stdout
    # pkgs.k8s.io's dependency fields, so apt resolves the same set as in production.
    assert (
        "Depends: kubelet (>= 1.30.0), kubectl (>= 1.30.0), kubernetes-cni (>= 1.4.0), cri-tools (>= 1.30.0)" in kubeadm
    )
    got = _apt(tmp_path, repo_url, keyring, "download", f"kubelet={deb_version}")
    assert got.returncode == 0, got.stderr
    [deb] = tmp_path.glob("kubelet_*.deb")
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout
    assert "./usr/bin/kubelet" in listing and "./etc/kubernetes/manifests/" in listing
    script = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(script)) as t:
        member = t.extractfile("./usr/bin/kubelet")
        assert member is not None and b"STANDIN kubelet" in member.read()  # a stand-in says so


def test_apt_refuses_the_repository_under_another_key(mirror: LocalCloud, tmp_path: Path) -> None:
    """The signature is checked: the same repository with a key that did not sign it fails."""
    info = mirror.admin().mirror()
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    subprocess.run(
        ["gpg", "--homedir", str(home), "--batch", "--passphrase", "", "--quick-generate-key", "other <o@x.invalid>",
         "rsa3072", "sign", "never"], check=True, capture_output=True,
    )  # fmt: skip
    other = subprocess.run(["gpg", "--homedir", str(home), "--armor", "--export"], check=True, capture_output=True)
    keyring = _keyring(tmp_path, other.stdout)
    r = _apt(tmp_path, f"{info['host_url']}/{REPO}", keyring, "update")
    assert "NO_PUBKEY" in r.stdout + r.stderr or "not signed" in r.stdout + r.stderr, r.stdout + r.stderr


def _json(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    data: dict[str, Any] = json.loads(r.content)
    return data


def test_the_registry_serves_every_prepulled_image_as_a_harbor_proxy_cache(mirror: LocalCloud) -> None:
    info = mirror.admin().mirror()
    v2 = f"{info['host_url']}/registry/v2"
    assert httpx.get(f"{v2}/").status_code == 200
    for name, kind in info["images"].items():
        registry, rest = name.split("/", 1)
        repository, tag = rest.rsplit(":", 1)
        base = f"{v2}/proxy-{registry}/{repository}"
        head = httpx.head(f"{base}/manifests/{tag}")
        assert head.status_code == 200 and head.content == b""
        digest = head.headers["docker-content-digest"]
        got = httpx.get(f"{base}/manifests/{tag}")
        assert got.headers["content-type"] == "application/vnd.oci.image.manifest.v1+json"
        assert f"sha256:{hashlib.sha256(got.content).hexdigest()}" == digest
        assert httpx.get(f"{base}/manifests/{digest}").content == got.content  # by digest too
        manifest = _json(got)
        config_blob = httpx.get(f"{base}/blobs/{manifest['config']['digest']}")
        config = _json(config_blob)
        [layer_desc] = manifest["layers"]
        layer = httpx.get(f"{base}/blobs/{layer_desc['digest']}").content
        assert f"sha256:{hashlib.sha256(layer).hexdigest()}" == layer_desc["digest"]
        raw = gzip.decompress(layer)
        assert config["rootfs"] == {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(raw).hexdigest()}"]}
        assert config["architecture"] == "amd64" and config["os"] == "linux"
        with tarfile.open(fileobj=io.BytesIO(raw)) as t:
            names = t.getnames()
            if kind == "static pause":
                member = t.extractfile("pause")
                assert member is not None and member.read(4) == b"\x7fELF"
                assert config["config"]["Entrypoint"] == ["/pause"]
            else:
                assert names == ["STANDIN"]
    log = httpx.get(info["registry_log"]).json()["pulls"]
    assert {p["status"] for p in log} == {200}
    assert any(p["method"] == "HEAD" and "/manifests/" in p["path"] for p in log)


def test_the_registry_answers_unknown_names_as_a_registry_does(mirror: LocalCloud) -> None:
    v2 = f"{mirror.admin().mirror()['host_url']}/registry/v2"
    missing = httpx.get(f"{v2}/proxy-registry.k8s.io/kube-apiserver/manifests/v0.0.1")
    assert missing.status_code == 404 and missing.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    # Only Harbor-style proxy projects exist: a path without one is no repository.
    assert httpx.get(f"{v2}/registry.k8s.io/pause/manifests/3.10").status_code == 404
    assert httpx.get(f"{v2}/proxy-registry.k8s.io/pause/blobs/sha256:{'0' * 64}").status_code == 404


def test_containerd_units_are_containerds_own_for_each_major() -> None:
    """The unit the recipe renders means what containerd's own unit of that release means (the
    mirror serves that unit from Debian's package, which ships it as upstream wrote it)."""
    require_mirror()
    root = mirror_root(default_cache_dir())
    for version in ("1.6.20", "2.1.9"):
        served = (root / "containerd" / f"v{version}" / "containerd.service").read_text()
        assert _settings(served) == _settings(containerd_unit(version)), version
    assert "LimitNOFILE=infinity" in containerd_unit("1.6.20")
    assert "LimitNOFILE" not in containerd_unit("2.1.9")


def _settings(unit: str) -> list[str]:
    return sorted(line for line in unit.splitlines() if line and not line.startswith("#"))
