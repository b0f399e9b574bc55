"""Recipe contexts for the provision tests: every profile and architecture, the seed's var
file, the seed's extra-tools script."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from provision.options import RecipeContext, RecipeOptions
from provision.profiles import PROFILES
from provision.versions import IMAGE_BUILDER_DEFAULTS, Versions, load_versions

REPO = Path(__file__).resolve().parents[2]
V131 = load_versions(REPO / "config/vars/k8s-1.31.json")
MATRIX = [(p, a) for p in PROFILES for a in ("x86", "arm")]


def ctx(profile: str = "ubuntu-2404", arch: str = "x86", versions: Versions = V131, **opts: object) -> RecipeContext:
    return RecipeContext(
        profile=PROFILES[profile],
        versions=versions,
        build_id="abcd1234",
        tool_version="0.1.0",
        build_time=dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC),
        arch=arch,
        options=RecipeOptions.model_validate(opts),
        script_sources=(("additional-tools.sh", (REPO / "config/scripts/additional-tools.sh").read_bytes()),),
    )


def versions(**overrides: str) -> Versions:
    return Versions.model_validate(
        {**IMAGE_BUILDER_DEFAULTS, **json.loads((REPO / "config/vars/k8s-1.31.json").read_text()), **overrides}
    )
