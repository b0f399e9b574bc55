"""The real Packer for ``make bench``: Debian's ``packer`` (1.6.6, hcloud builder built in,
honours ``HCLOUD_ENDPOINT``), installed by the bench when missing, run with a template
equivalent to a capi-image project: same server type, image, location, snapshot labels, and a
shell provisioner running the same commands as the project's rendered recipe.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from ..errors import FailedError

PACKER_PACKAGE = "packer"  # Debian's: 1.6.6+ds2, the hcloud builder built in


class PackerUnavailableError(FailedError):
    """Packer is not installed and could not be installed."""


def ensure_packer() -> str:
    """The packer binary; installed with apt-get when missing (root only)."""
    found = shutil.which("packer")
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise PackerUnavailableError(
            "packer is not installed and cannot be installed here (needs root and apt-get): "
            f"apt-get install {PACKER_PACKAGE}"
        )
    r = subprocess.run(
        ["apt-get", "install", "-y", "--no-install-recommends", PACKER_PACKAGE],
        capture_output=True,
        text=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    found = shutil.which("packer")
    if r.returncode != 0 or not found:
        tail = (r.stderr or r.stdout).strip().splitlines()[-3:]
        raise PackerUnavailableError(
            f"apt-get install {PACKER_PACKAGE} failed (exit {r.returncode}): {' / '.join(tail)}"
        )
    return found


def shell_commands(plan_doc: dict[str, Any]) -> list[str]:
    """The rendered recipe as shell commands for Packer's inline provisioner: each command as
    is, each file as a heredoc with its mode."""
    out: list[str] = []
    for step in plan_doc["steps"]:
        for op in step["operations"]:
            if "run" in op:
                out.append(op["run"])
            elif "file" in op:
                path = shlex.quote(op["file"])
                body = op["content"] if op["content"].endswith("\n") else op["content"] + "\n"
                out.append(
                    f"mkdir -p \"$(dirname {path})\" && cat > {path} <<'CAPI_IMAGE_EOF'\n{body}CAPI_IMAGE_EOF\n"
                    f"chmod {op['mode']} {path}"
                )
            else:
                out.append(op["command"])
    return out


def template(
    *, server_type: str, image: str, location: str, labels: dict[str, str], commands: list[str]
) -> dict[str, Any]:
    return {
        "builders": [
            {
                "type": "hcloud",
                "location": location,
                "server_type": server_type,
                "image": image,
                "ssh_username": "root",
                "snapshot_name": labels.get("caph-image-name", "packer-bench"),
                "snapshot_labels": labels,
            }
        ],
        "provisioners": [{"type": "shell", "inline": commands}],
    }


def run(packer: str, endpoint: str, tmpl: dict[str, Any], work: Path) -> float:
    """``packer build``; returns its wall time. Raises FailedError with the log's tail."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "template.json").write_text(json.dumps(tmpl, indent=1))
    env = {
        **os.environ,
        "HCLOUD_ENDPOINT": endpoint,
        "HCLOUD_TOKEN": "bench",
        "CHECKPOINT_DISABLE": "1",  # no update check over the network
        "PACKER_CONFIG_DIR": str(work),
        "PACKER_CACHE_DIR": str(work / "cache"),
    }
    t0 = time.monotonic()
    r = subprocess.run(
        [packer, "build", "-color=false", "template.json"], cwd=work, env=env, capture_output=True, text=True
    )
    wall = time.monotonic() - t0
    (work / "packer.log").write_text(r.stdout + r.stderr)
    if r.returncode != 0:
        raise FailedError(f"packer build failed (exit {r.returncode}): {(r.stdout + r.stderr)[-800:]}")
    return wall


__all__ = ["PackerUnavailableError", "ensure_packer", "run", "shell_commands", "template"]
