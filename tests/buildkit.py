"""Helpers for builder tests: projects pointed at an in-process localcloud, and leak checks."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.cloud import Cloud, make_client
from builder.config import REPO_ROOT, ProjectConfig, Retry, Timeouts
from builder.pipeline import Build, BuildResult
from localcloud.server import LocalCloud

from .localclouds import opened_localclouds

# Builds against the stub backend: short modelled actions, instant stand-in commands.
BUILD_TIMES = {
    "create_server": 0.05,
    "start_server": 0.05,
    "stop_server": 0.05,
    "shutdown_server": 0.05,
    "create_image": 0.1,
    "delete_server": 0.05,
    "guest_shutdown": 0.1,
}
FAST_RETRY = Retry(attempts=6, initial_wait=0.01, max_wait=0.05)
FAST_TIMEOUTS = Timeouts(api_action=20, ssh=20, cloud_init=20, shutdown=2, snapshot=20, step=20)
VERSIONS = REPO_ROOT / "config/vars/k8s-1.31.json"


@contextlib.contextmanager
def stub_cloud(**times: float) -> Iterator[LocalCloud]:
    """A stub localcloud for one block, checked against the OpenAPI document at its end."""
    with opened_localclouds() as clouds:
        yield clouds.start(action_times={**BUILD_TIMES, **times})


def project(endpoint: str, **overrides: Any) -> ProjectConfig:
    data: dict[str, Any] = {
        "name": "test",
        "endpoint": endpoint,
        "location": "fsn1",
        "server_type": "cpx22",
        "os": "ubuntu-2404",
        "versions": VERSIONS,
        "timeouts": FAST_TIMEOUTS,
        "retry": FAST_RETRY,
        "polling": {"initial": 0.02},
        "labels": {"team": "platform"},
        # Stand-in machines answer nothing: the full recipe's and the boot test's checks would fail.
        "recipe": "minimal",
        "boot_test": False,
    }
    data.update(overrides)
    return ProjectConfig.model_validate(data)


@dataclass
class Outcome:
    result: BuildResult | None
    error: BaseException | None
    manifest: dict[str, Any]
    build_id: str


def run_build(
    lc: LocalCloud,
    cfg: ProjectConfig,
    tmp: Path,
    token: str = "test-token",
    timeout: tuple[float, float] | None = None,
    **kw: Any,
) -> Outcome:
    """One build in this process; ``timeout`` (connect, read) replaces the client's default."""
    client, counter = make_client(token, lc.endpoint, **({"timeout": timeout} if timeout else {}))
    b = Build(
        cfg,
        Cloud(client, counter, cfg.retry, poll_initial=cfg.polling.initial),
        endpoint=lc.endpoint,
        manifest_path=tmp / "manifest.json",
        **kw,
    )
    try:
        return Outcome(b.run(), None, json.loads(b.manifest_path.read_text()), b.build_id)
    except BaseException as e:  # the tests inspect every kind of failure
        manifest = json.loads(b.manifest_path.read_text()) if b.manifest_path.exists() else {}
        return Outcome(None, e, manifest, b.build_id)


def leftovers(lc: LocalCloud) -> dict[str, list[Any]]:
    """What a build must not leave behind: servers, SSH keys, unpublished snapshots."""
    state = lc.admin().state()
    snapshots = [i for i in state["images"] if i["type"] == "snapshot"]
    return {
        "servers": [s["name"] for s in state["servers"]],
        "ssh_keys": [k["name"] for k in state["ssh_keys"]],
        "unpublished": [i["id"] for i in snapshots if "caph-image-name" not in i["labels"]],
    }


def snapshots(lc: LocalCloud) -> list[dict[str, Any]]:
    return [i for i in lc.admin().state()["images"] if i["type"] == "snapshot"]


NO_LEAKS: dict[str, list[Any]] = {"servers": [], "ssh_keys": [], "unpublished": []}


def write_project(config_dir: Path, name: str, text: str) -> Path:
    """A config dir for the CLI (CAPI_IMAGE_CONFIG_DIR) with one project file."""
    (config_dir / "projects").mkdir(parents=True, exist_ok=True)
    path = config_dir / "projects" / f"{name}.yaml"
    path.write_text(text)
    return path


STUB_PROJECT = f"""\
recipe: minimal
boot_test: false
location: fsn1
server_type: cpx22
os: ubuntu-2404
versions: {VERSIONS}
labels:
  team: platform
timeouts: {{api_action: 30, ssh: 30, cloud_init: 30, shutdown: 5, snapshot: 30, step: 30}}
retry: {{attempts: 6, initial_wait: 0.01, max_wait: 0.05}}
polling: {{initial: 0.05}}
"""


def cli_env(config_dir: Path, endpoint: str, token: str = "test-token") -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("HCLOUD_")}
    # HCLOUD_CONFIG: a developer's own hcloud CLI context must not stand in for a missing token
    return {
        **env,
        "CAPI_IMAGE_CONFIG_DIR": str(config_dir),
        "HCLOUD_ENDPOINT": endpoint,
        "HCLOUD_TOKEN": token,
        "HCLOUD_CONFIG": str(config_dir / "no-hcloud-cli.toml"),
    }


def build_command(tmp: Path, project_name: str = "p") -> list[str]:
    """``capi-image build`` for a project written with write_project, JSON logs, manifest in tmp."""
    import sys

    return [
        sys.executable,
        "-m",
        "builder.cli",
        "build",
        "-p",
        project_name,
        "--log-format",
        "json",
        "--manifest",
        str(tmp / "m.json"),
    ]


def run_cli(args: list[str], config_dir: Path, endpoint: str, token: str = "test-token") -> Any:
    import subprocess

    return subprocess.run(args, env=cli_env(config_dir, endpoint, token), capture_output=True, text=True, timeout=300)


# (name in error messages, method, path regex) for every call a build makes. Not here: the
# location look-up (only when no server type offers the location) and the image look-up after
# create_image (only when its action failed): a build that succeeds makes neither.
CALLS: list[tuple[str, str, str]] = [
    ("look up server type", "GET", r"^/v1/server_types$"),
    ("look up image", "GET", r"^/v1/images$"),
    ("create SSH key", "POST", r"^/v1/ssh_keys$"),
    ("create server", "POST", r"^/v1/servers$"),
    ("wait for an action", "GET", r"^/v1/actions/\d+$"),
    ("get server", "GET", r"^/v1/servers/\d+$"),
    ("shutdown server", "POST", r"/actions/shutdown$"),
    ("create image", "POST", r"/actions/create_image$"),
    ("publish image", "PUT", r"^/v1/images/\d+$"),
    ("delete server", "DELETE", r"^/v1/servers/\d+$"),
    ("delete SSH key", "DELETE", r"^/v1/ssh_keys/\d+$"),
]
