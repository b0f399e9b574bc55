"""Golden plans: what ``capi-image plan -o json`` renders, pinned as test data (the way pyinfra
pins what its operations render). A change to the recipe shows up as a reviewed diff of
``tests/data/golden/*.json``.

Regenerate after a deliberate change: ``make golden`` (``python -m tests.golden --write``).
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import sys
from pathlib import Path
from typing import Any

from builder.config import ProjectConfig
from builder.planning import plan_document
from builder.projects import load_project
from provision.profiles import PROFILES

GOLDEN_DIR = Path(__file__).parent / "data" / "golden"
REGENERATE = "make golden"
# Fixed inputs: a plan must not depend on the day or the machine it is rendered on.
STARTED = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
BUILD_ID = "00golden"
ENV = {"CONTAINER_REGISTRY_URL": "https://harbor.example.com"}
SERVER_TYPES = {"x86": "cpx22", "arm": "cax21"}


def cases() -> dict[str, ProjectConfig]:
    """The prod project (the seed's recipe) for every OS profile and architecture, the local
    projects as shipped (production-shaped and Debian 12), and prod with a var file exercising image-builder's options."""
    prod = load_project("prod")
    out = {
        f"prod-{profile}-{arch}": ProjectConfig.model_validate(
            {**prod.model_dump(), "os": profile, "architecture": arch, "server_type": SERVER_TYPES[arch]}
        )
        for profile in PROFILES
        for arch in ("x86", "arm")
    }
    out["local"] = load_project("local")
    out["local-debian12"] = load_project("local-debian12")
    # image-builder's var-file options this tool honours: extra debs, kubelet args, a custom
    # Kubernetes apt repo and key, the Ubuntu archive; and keys it accepts as upstream ignores them.
    out["prod-varfile-options"] = ProjectConfig.model_validate(
        {**prod.model_dump(), "versions": GOLDEN_DIR / "vars-options.json"}
    )
    return out


def render(config: ProjectConfig) -> str:
    doc: dict[str, Any] = plan_document(config, build_id=BUILD_ID, started=STARTED, env=ENV)
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


def path(name: str) -> Path:
    return GOLDEN_DIR / f"plan-{name}.json"


def diff(name: str, config: ProjectConfig, *, context: int = 3, limit: int = 80) -> str | None:
    """A unified diff from the golden file to what renders now, or None when they agree."""
    want = path(name).read_text() if path(name).exists() else ""
    got = render(config)
    if got == want:
        return None
    lines = list(
        difflib.unified_diff(
            want.splitlines(), got.splitlines(), f"golden/{path(name).name}", "rendered now", lineterm="", n=context
        )
    )
    shown = "\n".join(lines[:limit]) + (f"\n… {len(lines) - limit} more diff lines" if len(lines) > limit else "")
    return f"{shown}\nIf the change is deliberate, regenerate with `{REGENERATE}` and review the diff."


def write() -> list[str]:
    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    changed = []
    for name, config in cases().items():
        text = render(config)
        if not path(name).exists() or path(name).read_text() != text:
            path(name).write_text(text)
            changed.append(path(name).name)
    return changed


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit(f"usage: python -m tests.golden --write   (rewrites {GOLDEN_DIR})")
    print("\n".join(f"wrote {n}" for n in write()) or "golden plans unchanged")
