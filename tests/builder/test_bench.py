"""``make bench`` runs: the real Packer beside capi-image on one localcloud, and a clear message
(capi-image's row still printed) when Packer cannot be had. Figures are the bench's business; these
check that it produces them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from builder.config import REPO_ROOT
from builder.ops import packer

from ..prereq import require


def bench(tmp: Path, *args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HCLOUD_")}
    if path is not None:
        env["PATH"] = path
    return subprocess.run(
        [sys.executable, "-m", "builder.ops.bench", "--factor", "0.02", *args],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_without_packer_the_bench_says_so_and_still_prints_capi_image(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    r = bench(tmp_path, path=str(empty))  # no packer, no apt-get to install it with
    assert r.returncode == 1, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    assert "Packer's row is missing: packer is not installed and cannot be installed here" in r.stderr
    assert "capi-image" in r.stdout and "Packer 1.6.6" not in r.stdout


def test_the_bench_runs_the_real_packer_beside_capi_image(tmp_path: Path) -> None:
    try:
        packer.ensure_packer()
    except packer.PackerUnavailableError as e:
        require(f"the bench needs the real Packer: {e}")
    r = bench(tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = {line.split("│")[1].strip(): line for line in r.stdout.splitlines() if line.count("│") >= 5}
    assert set(rows) >= {"capi-image", "Packer 1.6.6 (hcloud builder)"}, r.stdout
    assert "fewer API requests than Packer" in r.stdout


def test_packer_template_runs_the_recipe_commands() -> None:
    doc = {
        "steps": [
            {"operations": [{"run": "echo one"}, {"file": "/etc/x y", "mode": "0644", "content": "a\n"}]},
            {"operations": [{"check": "c", "command": "test -f /etc/x", "expect": "ok", "value": ""}]},
        ]
    }
    cmds = packer.shell_commands(doc)
    assert cmds[0] == "echo one"
    assert "cat > '/etc/x y' <<'CAPI_IMAGE_EOF'\na\nCAPI_IMAGE_EOF" in cmds[1] and "chmod 0644 '/etc/x y'" in cmds[1]
    assert cmds[2] == "test -f /etc/x"
    tmpl = packer.template(server_type="cpx22", image="ubuntu-24.04", location="fsn1", labels={"a": "b"}, commands=cmds)
    (builder,) = tmpl["builders"]
    assert (builder["type"], builder["server_type"], builder["image"], builder["location"]) == (
        "hcloud", "cpx22", "ubuntu-24.04", "fsn1",
    )  # fmt: skip
    assert tmpl["provisioners"] == [{"type": "shell", "inline": cmds}]
