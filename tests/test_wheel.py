"""A new user's first hour, from the built wheel alone: a fresh virtualenv with nothing but
``pip install capi_image-*.whl`` (no extra, no checkout on the path, another working directory),
then ``--version``, ``init``, ``plan`` and a build against a stub localcloud that this test starts.

Before: the installed tool looked for projects in ``site-packages/config`` ("known: none"),
``-p cfg/mine.yaml`` looked for ``projects/cfg/mine.yaml.yaml``, and ``python -m localcloud
--help`` without the extra was a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from .buildkit import stub_cloud

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from this checkout, installed (with the tested versions of its
    dependencies) into a virtualenv of its own. Returns the venv's bin folder."""
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp / "dist"), str(REPO)],
        check=True,
        timeout=600,
    )
    [wheel] = (tmp / "dist").glob("capi_image-*.whl")
    venv.create(tmp / "venv", with_pip=True)
    pip = [str(tmp / "venv/bin/python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "-c", str(REPO / "constraints.txt"), str(wheel)], check=True, timeout=900)
    return tmp / "venv/bin"


def run(bin_dir: Path, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HCLOUD_", "CAPI_IMAGE_", "PYTHON"))}
    clean["HCLOUD_CONFIG"] = str(cwd / "no-hcloud-cli.toml")
    return subprocess.run(
        [str(bin_dir / args[0]), *args[1:]], cwd=cwd, env={**clean, **env}, capture_output=True, text=True, timeout=300
    )


def test_the_wheel_ships_license_notice_and_examples(installed: Path) -> None:
    [wheel] = (installed.parents[1] / "dist").glob("capi_image-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.endswith("licenses/LICENSE") for n in names) and any(n.endswith("licenses/NOTICE") for n in names)
    assert {"builder/examples/project.yaml", "builder/examples/vars/k8s-1.31.json"} <= set(names)
    assert not [n for n in names if n.startswith(("tests/", "config/"))]


def test_a_new_user_builds_from_the_wheel_alone(installed: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    version = run(installed, work, "capi-image", "--version")
    assert version.returncode == 0 and version.stdout.startswith("capi-image "), version.stderr

    init = run(installed, work, "capi-image", "init", "demo")
    assert init.returncode == 0, init.stderr
    assert (work / "demo.yaml").is_file() and (work / "vars/k8s-1.31.json").is_file()

    plan = run(installed, work, "capi-image", "plan", "-p", "demo")
    assert plan.returncode == 0, plan.stderr
    assert plan.stdout.startswith("# project demo: recipe full")

    with stub_cloud() as lc:
        # the stub's machines answer nothing: the lifecycle only (the full recipe's checks and
        # the boot test read what the machine answers; tests/e2e builds the full one on a VM)
        build = run(
            installed, work, "capi-image", "build", "-p", "./demo.yaml", "--recipe", "minimal", "--no-boot-test",
            HCLOUD_ENDPOINT=lc.endpoint, HCLOUD_TOKEN="new-user-token",
        )  # fmt: skip
        assert build.returncode == 0, build.stderr[-3000:]
        result = json.loads(build.stdout.strip().splitlines()[-1])
        assert result["caph-image-name"].endswith("-minimal"), result
        assert (work / "dist").is_dir()  # the build manifest, where the user is


def test_localcloud_without_its_extra_says_what_to_install(installed: Path, tmp_path: Path) -> None:
    r = run(installed, tmp_path, "python", "-m", "localcloud", "--help")
    assert r.returncode != 0
    [line] = r.stderr.strip().splitlines()
    assert line.startswith("localcloud needs the localcloud extra (") and line.endswith(
        "is not installed): pip install 'capi-image[localcloud]'"
    ), r.stderr
