"""``pip install capi-image`` without extras builds on Hetzner: localcloud's server dependencies
(starlette, uvicorn, qemu.qmp) are the ``localcloud`` extra, and the tool runs without them."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SERVER_DEPS = ("starlette", "uvicorn", "qemu")

# Run the CLI with localcloud's server dependencies made unimportable.
BLOCKED = """
import sys, runpy
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, Block())
sys.argv = ["capi-image", *sys.argv[1:]]
from builder.cli import main
main()
"""


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CAPI_IMAGE_CONFIG_DIR": str(REPO / "config"), "HCLOUD_TOKEN": "x"}
    env.pop("HCLOUD_ENDPOINT", None)
    code = BLOCKED.format(blocked=set(SERVER_DEPS))
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=120)


def test_server_dependencies_are_an_extra() -> None:
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    core = " ".join(meta["dependencies"])
    assert not [d for d in SERVER_DEPS if d in core]
    extra = " ".join(meta["optional-dependencies"]["localcloud"])
    assert all(d in extra for d in SERVER_DEPS)
    assert "capi-image[localcloud]" in meta["optional-dependencies"]["dev"]


def test_the_cli_works_for_hetzner_without_the_extra() -> None:
    r = _cli("plan", "-p", "prod", "-o", "json")
    assert r.returncode == 0, r.stderr
    assert '"project": "prod"' in r.stdout
    for command in ("gc", "images", "prune", "manifests", "build"):
        help_ = _cli(command, "--help")
        assert help_.returncode == 0, (command, help_.stderr)


def test_the_local_project_without_the_extra_says_what_to_install() -> None:
    r = _cli("build", "-p", "local")
    assert r.returncode == 2, r.stderr
    assert "pip install 'capi-image[localcloud]'" in r.stderr
    assert "Traceback" not in r.stderr
