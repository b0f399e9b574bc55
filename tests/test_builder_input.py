"""Bad input gets a specific error, exit code 2, and not a single mutating API call."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from builder.config import ConfigError, load_project
from localcloud.server import LocalCloud, Settings

from .buildkit import BUILD_TIMES, STUB_PROJECT, VERSIONS, build_command, cli_env, run_cli, write_project


@pytest.fixture
def lc() -> Iterator[LocalCloud]:
    with LocalCloud(Settings(backend="stub", action_times=BUILD_TIMES, tokens=frozenset({"good-token"}))) as cloud:
        yield cloud


def build(tmp: Path, lc: LocalCloud, text: str, token: str = "good-token") -> subprocess.CompletedProcess[str]:
    write_project(tmp / "config", "p", text)
    return run_cli(build_command(tmp), tmp / "config", lc.endpoint, token)  # type: ignore[no-any-return]


def mutating(lc: LocalCloud) -> list[str]:
    return [f"{r['method']} {r['path']}" for r in lc.admin().requests() if r["method"] != "GET"]


CASES = [
    ("malformed-yaml", "location: fsn1\nserver_type: [cpx22\n", "good-token", "is not valid YAML"),
    ("unknown-field", STUB_PROJECT + "colour: blue\n", "good-token", "colour: Extra inputs are not permitted"),
    (
        "unknown-os",
        STUB_PROJECT.replace("os: ubuntu-2404", "os: windows-11"),
        "good-token",
        "unknown OS profile 'windows-11'",
    ),
    ("bad-template", STUB_PROJECT + "image_name: '{nope}'\n", "good-token", "unknown placeholder(s) ['nope']"),
    (
        "invalid-label",
        STUB_PROJECT.replace("team: platform", "team: v1.31+k3s"),
        "good-token",
        "label team='v1.31+k3s' is invalid",
    ),
    ("long-label", STUB_PROJECT.replace("team: platform", "team: " + "x" * 64), "good-token", "longer than 63"),
    ("server-type", STUB_PROJECT.replace("cpx22", "cx99"), "good-token", "server type 'cx99' does not exist"),
    ("location", STUB_PROJECT.replace("fsn1", "mars1"), "good-token", "location 'mars1' does not exist"),
    (
        "image",
        STUB_PROJECT + "image: windows-11\n",
        "good-token",
        "image 'windows-11' does not exist for architecture x86",
    ),
    ("image-id", STUB_PROJECT + "image: '999999999'\n", "good-token", "image 999999999 does not exist"),
    (
        "image-id-arch",
        STUB_PROJECT + "image: '100000004'\n",  # localcloud's ubuntu-24.04 for arm
        "good-token",
        "image 100000004 is for arm, server type cpx22 is x86",
    ),
    (
        "arch-mismatch",
        STUB_PROJECT + "architecture: arm\n",
        "good-token",
        "server type cpx22 is x86, the project asks for arm",
    ),
    ("not-offered", STUB_PROJECT.replace("cpx22", "cx23").replace("fsn1", "ash"), "good-token", "not offered in ash"),
    ("versions", STUB_PROJECT.replace(str(VERSIONS), "/nonexistent/k8s.json"), "good-token", "does not exist"),
    ("wrong-token", STUB_PROJECT, "bad-token", "rejected the token in $HCLOUD_TOKEN"),
]


@pytest.mark.parametrize(("case", "text", "token", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_before_spending(
    lc: LocalCloud, tmp_path: Path, case: str, text: str, token: str, message: str
) -> None:
    r = build(tmp_path, lc, text, token)
    assert r.returncode == 2, r.stderr[-2000:]
    assert message in r.stderr, r.stderr[-2000:]
    assert mutating(lc) == []
    assert "bad-token" not in r.stderr + r.stdout


def test_missing_token_for_a_real_endpoint(tmp_path: Path) -> None:
    write_project(tmp_path / "config", "p", STUB_PROJECT + "endpoint: https://api.example.invalid/v1\n")
    env = cli_env(tmp_path / "config", "")
    del env["HCLOUD_ENDPOINT"], env["HCLOUD_TOKEN"]
    r = subprocess.run(
        [sys.executable, "-m", "builder.cli", "build", "-p", "p"], env=env, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 2
    assert "$HCLOUD_TOKEN is not set" in r.stderr


def test_unknown_project_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no project 'nope'.*known: local"):
        load_project("nope")


def test_shipped_projects_load() -> None:
    cfg = load_project("local")
    assert cfg.endpoint == "localcloud"
    assert cfg.versions_path().exists()


VAR_FILE_CASES = [
    ("unknown-key", {"kubernetes_semvar": "v1.31.5"}, "kubernetes_semvar: not an image-builder v0.1.48 variable"),
    ("proxy", {"http_proxy": "http://proxy:3128"}, "http_proxy='http://proxy:3128' is not supported"),
    (
        "containerd-settings",
        {"containerd_additional_settings": "W3BsdWdpbnNd"},
        "containerd_additional_settings='W3BsdWdpbnNd' is not supported",
    ),
    ("server-type", {"server_type": "cx42"}, "server_type: a packer setting; set it in the project config"),
    ("ansible-vars", {"ansible_user_vars": "foo=bar"}, "passes variables to upstream's Ansible roles"),
]


@pytest.mark.parametrize(("case", "extra", "message"), VAR_FILE_CASES, ids=[c[0] for c in VAR_FILE_CASES])
def test_var_file_keys_are_honoured_or_refused(
    lc: LocalCloud, tmp_path: Path, case: str, extra: dict[str, str], message: str
) -> None:
    """A var-file key this tool would not apply is exit 2 naming the key — never silently dropped."""
    var_file = tmp_path / "vars.json"
    var_file.write_text(json.dumps({**json.loads(VERSIONS.read_text()), **extra}))
    r = build(tmp_path, lc, STUB_PROJECT.replace(str(VERSIONS), str(var_file)))
    assert r.returncode == 2, r.stderr[-2000:]
    assert message in r.stderr, r.stderr[-2000:]
    assert mutating(lc) == []


def test_var_file_keys_at_upstream_defaults_are_accepted(lc: LocalCloud, tmp_path: Path) -> None:
    """Upstream's own defaults (as a copied packer/config var file holds them) and keys upstream's
    Ubuntu path ignores pass."""
    var_file = tmp_path / "vars.json"
    defaults = {"http_proxy": "", "containerd_gvisor_runtime": "false", "reenable_public_repos": True,
                "kubernetes_rpm_version": "1.31.4", "goss_version": "0.3.23", "build_name": "ubuntu-2404"}  # fmt: skip
    var_file.write_text(json.dumps({**json.loads(VERSIONS.read_text()), **defaults}))
    r = build(tmp_path, lc, STUB_PROJECT.replace(str(VERSIONS), str(var_file)))
    assert r.returncode == 0, r.stderr[-2000:]
