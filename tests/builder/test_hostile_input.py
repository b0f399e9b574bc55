"""Hostile and accidental input (issue #22's reproductions): files in other encodings, binary
files, alias bombs, unbounded numbers. Each is read correctly or refused with one line."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from builder.config import ConfigError
from builder.ops.inuse import InUseInputError, scan
from builder.projects import load_project

from ..buildkit import STUB_PROJECT, run_cli, write_project
from ..localclouds import LocalClouds

REPO = Path(__file__).resolve().parents[2]
NAME = "k8s-v1.31.4-ubuntu-2404-x86-20261201-0000"
MANIFEST = f"kind: HCloudMachineTemplate\nspec:\n  template:\n    spec:\n      imageName: {NAME}\n"


def test_an_in_use_file_saved_as_utf16_still_protects_its_image(tmp_path: Path) -> None:
    """Before: skipped as "binary", and prune deleted the image it names."""
    f = tmp_path / "cluster.yaml"
    f.write_text(MANIFEST, encoding="utf-16")  # with a byte-order mark, as editors save it
    assert scan([f]).find(NAME, "0") is not None


def test_an_in_use_file_prune_cannot_read_is_a_refusal(tmp_path: Path) -> None:
    (tmp_path / "cluster.yaml").write_text(MANIFEST)
    (tmp_path / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(InUseInputError, match=r"logo\.png is not a text file"):
        scan([tmp_path])
    (tmp_path / "logo.png").unlink()
    (tmp_path / "latin1.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(InUseInputError, match=r"latin1\.yaml is not UTF-8 text"):
        scan([tmp_path])


def test_a_yaml_alias_bomb_is_read_in_its_own_size(tmp_path: Path) -> None:
    """Before: prune hung walking the expansion."""
    lines = ['a0: &a0 ["lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 12)]
    lines.append(f"image: {NAME}")
    f = tmp_path / "bomb.yaml"
    f.write_text("\n".join(lines) + "\n")
    started = time.monotonic()
    refs = scan([f])
    assert time.monotonic() - started < 10
    assert refs.find(NAME, "0") is not None


def _project(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "p.yaml"
    path.write_bytes(data)
    return path


BASE = "location: fsn1\nserver_type: cpx22\nos: ubuntu-2404\nversions: vars/k8s-1.31.json\n"


def test_a_project_file_in_utf16_or_with_a_bom_is_read(tmp_path: Path) -> None:
    assert load_project("p", _project(tmp_path, BASE.encode("utf-16"))).location == "fsn1"
    assert load_project("p", _project(tmp_path, b"\xef\xbb\xbf" + BASE.encode())).location == "fsn1"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00", "is not a text file"),
        (BASE.encode("utf-16-le"), "is not a text file"),  # UTF-16 without a byte-order mark
        ("location: f\xe9\n".encode("latin-1"), "is not UTF-8 text"),
    ],
    ids=["binary", "utf16-no-bom", "latin1"],
)
def test_a_project_file_that_is_not_text_is_one_line(tmp_path: Path, data: bytes, message: str) -> None:
    """Before: a UnicodeDecodeError traceback."""
    with pytest.raises(ConfigError, match=message) as e:
        load_project("p", _project(tmp_path, data))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "setting",
    ["timeouts: {ssh: 1e308}", "timeouts: {ssh: .inf}", "retry: {attempts: 1000000000}", "retention: {keep: 1e9}",
     "api_budget: {limit: 1e12}", "polling: {initial: 1e9}"],
)  # fmt: skip
def test_every_number_is_bounded(tmp_path: Path, setting: str) -> None:
    with pytest.raises(ConfigError, match=r"less than or equal|finite"):
        load_project("p", _project(tmp_path, (BASE + setting + "\n").encode()))


@pytest.mark.parametrize(
    "setting",
    [
        'provision: {apt_mirror: "http://x/ ; rm -rf / #"}',
        'provision: {apt_mirror: "ftp://mirror.example.com/debian"}',
        'provision: {apt_security_mirror: "http://"}',
        'provision: {artifacts: {containerd_url: "https://x.example.com/$(id)"}}',
        'provision: {registry_mirror: {url: "https://harbor example.com"}}',
    ],
)
def test_url_fields_are_urls(tmp_path: Path, setting: str) -> None:
    """Before: rendered into the apt sources as is."""
    with pytest.raises(ConfigError, match=r"is not a URL|must be an http"):
        load_project("p", _project(tmp_path, (BASE + setting + "\n").encode()))


def test_an_empty_image_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"image_name: .*is empty"):
        load_project("p", _project(tmp_path, (BASE + "image_name: ''\n").encode()))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--build-id", ""], "--build-id '' cannot label resources"),
        (["--build-id", "a b"], "--build-id 'a b' cannot label resources"),
        (["--manifest", "/proc/nope/m.json"], "--manifest /proc/nope/m.json: cannot write in /proc/nope"),
        (["--manifest", "."], "--manifest . is a directory"),
    ],
    ids=["empty-id", "spaced-id", "unwritable-manifest", "directory-manifest"],
)
def test_bad_command_line_values_are_refused_before_any_call(
    localclouds: LocalClouds, tmp_path: Path, args: list[str], message: str
) -> None:
    lc = localclouds.start()
    write_project(tmp_path / "config", "p", STUB_PROJECT)
    cmd = [sys.executable, "-m", "builder.cli", "build", "-p", "p", *args]
    r = run_cli(cmd, tmp_path / "config", lc.endpoint)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr
    assert lc.admin().requests() == []  # nothing asked of the API, nothing created


def test_manifests_refuses_an_empty_image(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "builder.cli", "manifests", "--image", "", "-p", "local"],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 2 and "--image is empty" in r.stderr, r.stderr


def test_a_script_entry_that_is_a_directory_says_so(tmp_path: Path) -> None:
    """Before: "does not exist" about a folder that does."""
    config = tmp_path / "config"
    (config / "projects").mkdir(parents=True)
    (config / "scripts" / "tools").mkdir(parents=True)
    (config / "projects" / "p.yaml").write_text(BASE.replace("vars/", str(REPO / "config/vars") + "/")
                                                + "provision:\n  scripts:\n    - scripts/tools\n")  # fmt: skip
    env = {**os.environ, "CAPI_IMAGE_CONFIG_DIR": str(config)}
    r = subprocess.run([sys.executable, "-m", "builder.cli", "plan", "-p", "p"], env=env,
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 2 and "is a directory: list each script file in it" in r.stderr, r.stderr
