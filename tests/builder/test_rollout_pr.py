"""The nightly workflow's rollout step (.github/scripts/rollout-pr.sh), run as the workflow runs
it: three nights of ``build --matrix --skip-unchanged`` on a stub localcloud (canned package
lists: a first image, a security update, nothing new), the script in a real git clone pushing to
a real (local, bare) remote, real ``capi-image manifests`` and ``diff``. Only ``gh`` is a
stand-in: it records what it was asked and keeps the one pull request it "opened"."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from localcloud.server import LocalCloud

from ..buildkit import STUB_PROJECT, cli_env, stub_cloud, write_project

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / ".github" / "scripts" / "rollout-pr.sh"
CLUSTER = REPO / "tests" / "data" / "clusters" / "v1beta2.yaml"

GH_STANDIN = """#!/bin/sh
# STAND-IN for GitHub's gh CLI (tests only): records each call and the body it was given;
# "pr view" succeeds once a pull request was created.
echo "$*" >> "$GH_LOG"
body=""; prev=""
for a; do [ "$prev" = "--body-file" ] && body="$a"; prev="$a"; done
case "$1 $2" in
  "pr view") [ -f "$GH_STATE" ] ;;
  "pr create") touch "$GH_STATE" && cp "$body" "$GH_STATE.body" ;;
  "pr edit") cp "$body" "$GH_STATE.body" ;;
esac
"""

# The stub builds are of the minimal recipe (stand-in machines): manifests accepts them only
# when told, so the wrapper says so; everything else is the CLI as installed.
CAPI_WRAPPER = """#!/bin/sh
if [ "$1" = manifests ]; then shift; exec "{python}" -m builder.cli manifests --allow-partial-recipe "$@"; fi
exec "{python}" -m builder.cli "$@"
"""


def canned(curl: str) -> str:
    return (
        "### os\ndebian\t13\ttrixie\n### packages\n"
        f"ii \tcurl\t{curl}\tamd64\tcurl\t{curl}\n"
        "ii \tlibc6\t2.41-12\tamd64\tglibc\t2.41-12\n### holds\n### kernel\n6.12.57+deb13-amd64\n"
    )


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def night(lc: LocalCloud, work: Path, tmp: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """One night: the workflow's build step, then its rollout step, in the clone."""
    build = [sys.executable, "-m", "builder.cli", "build", "-p", "p", "--matrix", "--skip-unchanged"]
    r = subprocess.run(
        [*build, "--log-format", "json", "--manifest", "dist/matrix.json"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return subprocess.run(
        [str(SCRIPT), "dist/matrix.json"], cwd=work, env=env, capture_output=True, text=True, timeout=300
    )


def test_three_nights_of_rollout_pull_requests(tmp_path: Path) -> None:
    for tool in ("git", "bash"):
        assert shutil.which(tool), f"{tool} is needed"
    remote, work, bin_dir = tmp_path / "remote.git", tmp_path / "work", tmp_path / "bin"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    git(tmp_path, "clone", "-q", str(remote), str(work))
    (work / "clusters" / "p").mkdir(parents=True)
    shutil.copy(CLUSTER, work / "clusters" / "p" / "cluster.yaml")
    (work / ".gitignore").write_text("dist/\n")
    git(work, "add", ".")
    git(work, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "clusters")
    git(work, "push", "-q", "origin", "HEAD:main")
    bin_dir.mkdir()
    (bin_dir / "gh").write_text(GH_STANDIN)
    (bin_dir / "capi-image").write_text(CAPI_WRAPPER.format(python=sys.executable))
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    with stub_cloud() as lc:
        write_project(
            tmp_path / "config",
            "p",
            STUB_PROJECT + 'image_name: "k8s-{kubernetes_semver}-{os}-{build_id}"\nmatrix: {}\n',
        )
        env = {
            **cli_env(tmp_path / "config", lc.endpoint),
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "PROJECT": "p",
            "CAPI_IMAGE": str(bin_dir / "capi-image"),
            "GH_LOG": str(tmp_path / "gh.log"),
            "GH_STATE": str(tmp_path / "gh.pr"),
            "PYTHONPATH": str(REPO),
        }
        # night 1: the first image: rolled in, its SBOM kept, a pull request opened
        lc.admin().answer(r"### packages", canned("8.14.1-2"))
        first = night(lc, work, tmp_path, env)
        assert first.returncode == 0, first.stdout + first.stderr
        body = (tmp_path / "gh.pr.body").read_text()
        assert "No SBOM of the image before it" in body
        calls = (tmp_path / "gh.log").read_text().splitlines()
        assert calls[-1].startswith("pr create --base main --head image-rollout/p")
        image_a = json.loads((work / "dist" / "matrix.json").read_text())["builds"][0]["caph-image-name"]
        assert git(remote, "ls-tree", "-r", "--name-only", "image-rollout/p").split() == [
            ".gitignore", "clusters/p/cluster.yaml", f"sboms/p/{image_a}.cdx.json"
        ]  # fmt: skip
        assert image_a in git(remote, "show", "image-rollout/p:clusters/p/cluster.yaml")
        # the pull request is merged
        git(work, "checkout", "-q", "main")
        git(work, "merge", "-q", "--ff-only", "image-rollout/p")
        git(work, "push", "-q", "origin", "main")

        # night 2: a security update of curl: the same pull request, its body the image diff
        lc.admin().answer(r"### packages", canned("8.14.1-2+deb13u1"))
        second = night(lc, work, tmp_path, env)
        assert second.returncode == 0, second.stdout + second.stderr
        calls = (tmp_path / "gh.log").read_text().splitlines()
        assert calls[-1].startswith("pr edit image-rollout/p --title")
        body = (tmp_path / "gh.pr.body").read_text()
        assert f"### `{image_a}` → `" in body
        assert "| package | `curl` | upgraded | `8.14.1-2` | `8.14.1-2+deb13u1` |" in body
        assert "libc6" not in body  # only what changed

        # night 3: nothing new: no image published, no rollout, no call to GitHub
        git(work, "checkout", "-q", "main")
        third = night(lc, work, tmp_path, env)
        assert third.returncode == 0, third.stdout + third.stderr
        assert "no new image for p" in third.stdout
        assert (tmp_path / "gh.log").read_text().splitlines() == calls
