"""The SBOM of every build, ``capi-image diff`` and ``build --skip-unchanged``, on stub localcloud
builds whose machines answer the inventory command with a canned package list (the stub's
``/stub/answers``: labelled stand-in output — the real one is read from a VM in
tests/e2e/test_build_qemu_e2e.py and compared there with dpkg-query on the snapshot)."""

from __future__ import annotations

import copy
import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import SSlibKey  # type: ignore[attr-defined]

from builder import provenance
from builder.sbom import document
from localcloud.server import LocalCloud

from ..buildkit import STUB_PROJECT, VERSIONS, cli_env, snapshots, stub_cloud, write_project

PAUSE = "sha256:" + "7" * 64
CONTAINERD = "c" * 64


def canned(curl: str = "8.14.1-2", *, containerd: str = CONTAINERD) -> str:
    """What the inventory command prints on a small Debian 13 node (stand-in output)."""
    return (
        "### os\ndebian\t13\ttrixie\n"
        "### packages\n"
        f"ii \tcurl\t{curl}\tamd64\tcurl\t{curl}\n"
        "ii \tkubelet\t1.31.4-1.1\tamd64\tkubernetes\t1.31.4-1.1\n"
        "ii \tlibc6\t2.41-12\tamd64\tglibc\t2.41-12\n"
        "### holds\nkubelet\n"
        "### kernel\n6.12.57+deb13-amd64\n"
        f"### binaries\n{containerd}  /usr/local/bin/containerd\n"
        "### images\nREF TYPE DIGEST SIZE PLATFORMS LABELS\n"
        f"registry.k8s.io/pause:3.10 application/vnd.oci.image.index.v1+json {PAUSE} 300.0 KiB linux/amd64 -\n"
    )


@pytest.fixture
def lc() -> Iterator[LocalCloud]:
    with stub_cloud() as cloud:
        yield cloud


def build(lc: LocalCloud, tmp: Path, name: str, *args: str) -> tuple[subprocess.CompletedProcess[str], dict]:  # type: ignore[type-arg]
    config = tmp / "config"
    if not (config / "projects" / "p.yaml").exists():
        write_project(config, "p", STUB_PROJECT + 'image_name: "k8s-{kubernetes_semver}-{os}-{build_id}"\n')
    manifest = tmp / f"{name}.json"
    cmd = [sys.executable, "-m", "builder.cli", "build", "-p", "p", "--log-format", "json", "--manifest", str(manifest)]
    r = subprocess.run([*cmd, *args], env=cli_env(config, lc.endpoint), capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    return r, json.loads(r.stdout.strip().splitlines()[-1])


def diff(tmp: Path, lc: LocalCloud, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "builder.cli", "diff", *args]
    return subprocess.run(cmd, env=cli_env(tmp / "config", lc.endpoint), capture_output=True, text=True, timeout=120)


def test_every_build_writes_a_valid_sbom_its_snapshot_leads_back_to(lc: LocalCloud, tmp_path: Path) -> None:
    lc.admin().answer(r"### packages", canned())
    _, line = build(lc, tmp_path, "a")
    manifest = json.loads(Path(line["manifest"]).read_text())
    sbom = Path(manifest["sbom"]["path"])
    assert sbom.name == "a.cdx.json" and sbom.parent == tmp_path
    text = sbom.read_text()
    data = document.load(text, str(sbom))  # the library's validator, for the spec version written
    assert data["specVersion"] == "1.6"
    purls = {c.get("purl") for c in data["components"]}
    assert "pkg:deb/debian/curl@8.14.1-2?arch=amd64&distro=debian-13" in purls
    assert "pkg:deb/debian/kubelet@1.31.4-1.1?arch=amd64&distro=debian-13&upstream=kubernetes" in purls
    [held] = [c for c in data["components"] if c["name"] == "kubelet"]
    assert {"name": "capi-image:apt-mark", "value": "hold"} in held["properties"]
    [binary] = [c for c in data["components"] if c["type"] == "file"]
    assert binary["hashes"] == [{"alg": "SHA-256", "content": CONTAINERD}]
    [image] = [c for c in data["components"] if c["type"] == "container"]
    assert image["version"] == PAUSE
    assert manifest["sbom"]["sha256"] == document.file_digest(text)
    assert (manifest["sbom"]["packages"], manifest["sbom"]["binaries"], manifest["sbom"]["images"]) == (3, 1, 1)
    assert manifest["provenance"]["signed"] is False  # the project names no key
    assert json.loads(Path(manifest["provenance"]["path"]).read_text())["signatures"] == []
    [snap] = snapshots(lc)
    assert snap["labels"][document.LABEL_FILE] == document.file_digest(text)[:32]
    assert snap["labels"][document.LABEL_CONTENT] == manifest["sbom"]["content_sha256"][:32]


def test_diff_shows_exactly_the_package_that_changed(lc: LocalCloud, tmp_path: Path) -> None:
    lc.admin().answer(r"### packages", canned("8.14.1-2"))
    _, a = build(lc, tmp_path, "a")
    _, same = build(lc, tmp_path, "same")
    lc.admin().answer(r"### packages", canned("8.14.1-2+deb13u1"))
    _, b = build(lc, tmp_path, "b")
    r = diff(tmp_path, lc, a["manifest"], b["manifest"], "-o", "json")
    assert r.returncode == 0, r.stderr
    changes = json.loads(r.stdout)["changes"]
    assert changes == [
        {"kind": "package", "name": "curl", "change": "upgraded", "old": "8.14.1-2", "new": "8.14.1-2+deb13u1"}
    ]
    back = json.loads(diff(tmp_path, lc, b["manifest"], a["manifest"], "-o", "json").stdout)["changes"]
    assert [c["change"] for c in back] == ["downgraded"]  # Debian's order: +deb13u1 is newer
    r = diff(tmp_path, lc, a["manifest"], same["manifest"], "-o", "json")
    assert json.loads(r.stdout)["changes"] == []
    md = diff(tmp_path, lc, a["manifest"], b["manifest"], "-o", "markdown").stdout
    assert "| package | `curl` | upgraded | `8.14.1-2` | `8.14.1-2+deb13u1` |" in md
    assert "No change" in diff(tmp_path, lc, a["manifest"], same["manifest"], "-o", "markdown").stdout
    # a snapshot found in the cloud leads back to its SBOM: by id and by caph-image-name
    by_cloud = diff(
        tmp_path, lc, "-p", "p", "--sbom-dir", str(tmp_path), str(a["snapshot_id"]), b["caph-image-name"], "-o", "json"
    )
    assert by_cloud.returncode == 0, by_cloud.stderr
    assert [c["name"] for c in json.loads(by_cloud.stdout)["changes"]] == ["curl"]


def test_skip_unchanged_publishes_only_a_change(lc: LocalCloud, tmp_path: Path) -> None:
    lc.admin().answer(r"### packages", canned())
    _, first = build(lc, tmp_path, "first")
    assert first["unchanged"] is False
    r, again = build(lc, tmp_path, "again", "--skip-unchanged")
    assert again["unchanged"] is True
    assert (again["snapshot_id"], again["caph-image-name"]) == (first["snapshot_id"], first["caph-image-name"])
    assert [s["id"] for s in snapshots(lc)] == [first["snapshot_id"]]  # one snapshot, not two
    assert not [s for s in lc.admin().state()["servers"]]
    events = [json.loads(x).get("event") for x in r.stderr.splitlines() if x.startswith("{")]
    assert "image.unchanged" in events and "snapshot.creating" not in events
    lc.admin().answer(r"### packages", canned(containerd="d" * 64))  # a binary changed
    _, changed = build(lc, tmp_path, "changed", "--skip-unchanged")
    assert changed["unchanged"] is False and changed["snapshot_id"] != first["snapshot_id"]
    assert len(snapshots(lc)) == 2


def test_a_published_image_has_its_provenance_signed_with_the_projects_key(lc: LocalCloud, tmp_path: Path) -> None:
    """An in-toto statement (SLSA provenance v1) in a DSSE envelope beside the manifest: the SBOM
    as subject, the base image, var file and downloads as inputs; signed with the project's key
    (verified here with its public half), unsigned without one."""
    key = Ed25519PrivateKey.generate()
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "provenance.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    write_project(
        tmp_path / "config",
        "p",
        STUB_PROJECT + 'image_name: "k8s-{kubernetes_semver}-{os}-{build_id}"\nprovenance_key: provenance.pem\n',
    )
    lc.admin().answer(r"### packages", canned())
    _, line = build(lc, tmp_path, "signed")
    manifest = json.loads(Path(line["manifest"]).read_text())
    assert manifest["provenance"]["signed"] is True
    envelope = json.loads(Path(manifest["provenance"]["path"]).read_text())
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    statement = provenance.payload(envelope)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    [subject] = statement["subject"]
    assert subject["digest"] == {"sha256": manifest["sbom"]["sha256"]}
    assert subject["annotations"]["snapshot_id"] == line["snapshot_id"]
    inputs = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert inputs[0]["uri"].startswith("hcloud:image/")
    assert inputs[1]["digest"]["sha256"] == hashlib.sha256(VERSIONS.read_bytes()).hexdigest()
    assert statement["predicate"]["runDetails"]["metadata"]["invocationId"] == manifest["build_id"]
    public = SSlibKey.from_crypto(key.public_key())
    Envelope.from_dict(copy.deepcopy(envelope)).verify([public], 1)  # raises unless signed by that key
    other = SSlibKey.from_crypto(Ed25519PrivateKey.generate().public_key())
    with pytest.raises(VerificationError):
        Envelope.from_dict(copy.deepcopy(envelope)).verify([other], 1)  # (from_dict edits its argument)
