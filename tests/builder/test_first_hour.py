"""The mistakes a new user makes in the first hour, each run as they would run it: one line on
stderr that says what is wrong and what to do, exit 2 (1 where the cloud failed), no traceback —
and an unreachable API within seconds, not after a minute and a half of retries."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from localcloud.server import LocalCloud

from ..buildkit import BUILD_TIMES, STUB_PROJECT, cli_env, write_project
from ..localclouds import LocalClouds

TOKEN = "first-hour-token"


@pytest.fixture
def lc(localclouds: LocalClouds) -> LocalCloud:
    return localclouds.start(action_times=BUILD_TIMES, tokens=frozenset({TOKEN}))


def cli(tmp: Path, endpoint: str, *args: str, token: str = TOKEN, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**cli_env(tmp / "config", endpoint, token), **env}
    if not endpoint:
        del full["HCLOUD_ENDPOINT"]
    return subprocess.run(
        [sys.executable, "-m", "builder.cli", *args], env=full, capture_output=True, text=True, timeout=120, cwd=tmp
    )


def is_log_record(line: str) -> bool:
    """A JSON log record (a build logs its phases as JSON off a terminal): the machine's
    stream, not a message to the user."""
    try:
        return "event" in json.loads(line)
    except ValueError:
        return False


def one_line(r: subprocess.CompletedProcess[str], code: int, *parts: str) -> str:
    """One message line on stderr (beside a build's JSON log records), exit ``code``, no traceback."""
    assert r.returncode == code, r.stderr[-3000:]
    assert "Traceback" not in r.stderr + r.stdout
    lines = [line for line in r.stderr.strip().splitlines() if not is_log_record(line)]
    assert len(lines) == 1, r.stderr[-3000:]
    assert lines[0].startswith("error: "), lines[0]
    for part in parts:
        assert part in lines[0], lines[0]
    return lines[0]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends: nothing listens


def test_no_projects_yet(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    one_line(cli(tmp_path, "", "plan", "-p", "mine"), 2, "no project 'mine'", "capi-image init mine", "--config-dir")
    one_line(
        cli(tmp_path, "", "plan", "-p", "cfg/projects/mine.yaml"),
        2,
        "project file cfg/projects/mine.yaml does not exist",
    )
    one_line(cli(tmp_path, "", "plan", "-p", "../x y"), 2, "project file ../x y does not exist")


def test_a_project_given_by_path_finds_its_var_file(tmp_path: Path) -> None:
    """Before: ``-p cfg/projects/mine.yaml`` looked for ``projects/cfg/projects/mine.yaml.yaml``."""
    (tmp_path / "config").mkdir()
    assert cli(tmp_path, "", "init", "mine", "--dir", "cfg/projects").returncode == 0
    r = cli(tmp_path, "", "plan", "-p", "cfg/projects/mine.yaml")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("# project mine: recipe full")


@pytest.mark.parametrize(
    ("endpoint", "parts"),
    [
        ("http://127.0.0.1:{port}/v1", ["cannot reach the API at http://127.0.0.1:", "Connection refused"]),
        ("https://api.capi-image-test.invalid/v1", ["api.capi-image-test.invalid does not resolve"]),
        ("127.0.0.1:{port}/v1", ["is not an http(s) URL: did you mean https://127.0.0.1:"]),
        ("http://127.0.0.1:{port}", ["has no API path", "/v1"]),
    ],
    ids=["refused", "dns", "no-scheme", "no-v1"],
)
def test_an_endpoint_that_cannot_work_fails_in_seconds(tmp_path: Path, endpoint: str, parts: list[str]) -> None:
    write_project(tmp_path / "config", "p", STUB_PROJECT)
    t0 = time.monotonic()
    r = cli(tmp_path, endpoint.format(port=closed_port()), "images", "-p", "p")
    assert time.monotonic() - t0 < 15
    one_line(r, 2, "HCLOUD_ENDPOINT", *parts)


@pytest.mark.parametrize(
    "command",
    [
        ["images", "-p", "p"],
        ["gc", "-p", "p"],
        ["prune", "-p", "p"],
        ["manifests", "--image", "some-image", "-p", "p"],
        ["build", "-p", "p"],
    ],
    ids=lambda c: c[0],
)
def test_a_refused_token_is_the_same_line_everywhere(lc: LocalCloud, tmp_path: Path, command: list[str]) -> None:
    """Before: clear in build, raw text and exit 1 in images, gc, prune and manifests."""
    write_project(tmp_path / "config", "p", STUB_PROJECT)
    r = cli(tmp_path, lc.endpoint, *command, token="wrong-token")
    one_line(r, 2, "the API rejected the token (unauthorized", "$HCLOUD_TOKEN", "hcloud CLI")
    assert "wrong-token" not in r.stderr + r.stdout


def test_the_hcloud_cli_context_stands_in_for_hcloud_token(lc: LocalCloud, tmp_path: Path) -> None:
    write_project(tmp_path / "config", "p", STUB_PROJECT)
    config = tmp_path / "cli.toml"
    config.write_text(
        f'active_context = "work"\n\n[[contexts]]\nname = "work"\ntoken = "{TOKEN}"\n\n'
        '[[contexts]]\nname = "other"\ntoken = "nope"\n'
    )
    env = {"HCLOUD_CONFIG": str(config)}
    r = cli(tmp_path, lc.endpoint, "images", "-p", "p", "-o", "json", token="", **env)
    assert r.returncode == 0, r.stderr
    assert TOKEN not in r.stderr + r.stdout
    one_line(
        cli(tmp_path, lc.endpoint, "images", "-p", "p", token="", HCLOUD_CONTEXT="gone", **env), 2, "context 'gone'"
    )
    missing = cli(tmp_path, "https://api.example.invalid/v1", "images", "-p", "p", token="")
    one_line(missing, 2, "$HCLOUD_TOKEN is not set (nor an hcloud CLI context)")


def test_config_mistakes_read_cleanly(lc: LocalCloud, tmp_path: Path) -> None:
    write_project(tmp_path / "config", "p", STUB_PROJECT.replace("os: ubuntu-2404", "os: windows-11"))
    r = cli(tmp_path, lc.endpoint, "plan", "-p", "p")
    assert r.returncode == 2 and "unknown OS profile 'windows-11'" in r.stderr
    assert "Value error" not in r.stderr  # pydantic's prefix, before
    write_project(tmp_path / "config", "p", STUB_PROJECT.replace("cpx22", "cx99"))
    one_line(cli(tmp_path, lc.endpoint, "build", "-p", "p"), 2, "server type 'cx99' does not exist", "offers:", "cpx22")
    write_project(tmp_path / "config", "p", STUB_PROJECT)
    one_line(
        cli(tmp_path, lc.endpoint, "build", "-p", "p", "--var-file", "nope.json"),
        2,
        "--var-file nope.json does not exist",
    )
    one_line(cli(tmp_path, lc.endpoint, "prune", "-p", "p", "--yes", "--dry-run"), 2, "exclude each other")
    write_project(tmp_path / "config", "p", STUB_PROJECT + "provenance_key: keys/missing.pem\n")
    r = cli(tmp_path, lc.endpoint, "build", "-p", "p")
    one_line(r, 2, "provenance_key", "missing.pem is not an unencrypted PEM private key")
    assert "POST" not in " ".join(f"{x['method']}" for x in lc.admin().requests())  # found before any cost


def test_manifests_for_an_image_that_is_not_there(lc: LocalCloud, tmp_path: Path) -> None:
    """Before: "no server type: pass --server-type", about an image that does not exist."""
    write_project(tmp_path / "config", "p", STUB_PROJECT)
    one_line(
        cli(tmp_path, lc.endpoint, "manifests", "--image", "nosuch", "-p", "p"), 2, "'nosuch' resolves to no image"
    )


def test_a_minimal_build_needs_no_registry_secret(lc: LocalCloud, tmp_path: Path) -> None:
    """Before: CONTAINER_REGISTRY_URL was required by --recipe minimal, which configures no registry."""
    mirror = "provision:\n  registry_mirror:\n    url_env: CONTAINER_REGISTRY_URL\n"
    write_project(tmp_path / "config", "p", STUB_PROJECT.replace("recipe: minimal\n", "recipe: full\n") + mirror)
    full = cli(tmp_path, lc.endpoint, "build", "-p", "p")
    one_line(full, 2, "$CONTAINER_REGISTRY_URL is not set")
    r = cli(tmp_path, lc.endpoint, "build", "-p", "p", "--recipe", "minimal", "--manifest", str(tmp_path / "m.json"))
    assert r.returncode == 0, r.stderr[-3000:]
