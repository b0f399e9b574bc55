"""Step 7, custom scripts (``config/scripts/*.sh``): uploaded and run as root with a documented
environment, *before* sysprep and verify so their leftovers are cleaned and checked too (the
seed runs them after both)."""

from __future__ import annotations

import shlex

from ..options import RecipeContext
from ..plan import Put, Run, Step

DIR = "/tmp/capi-image-scripts"


def script_env(ctx: RecipeContext) -> dict[str, str]:
    v, m = ctx.versions, ctx.options.registry_mirror
    return {
        "ARCH": ctx.deb_arch,
        "OS": ctx.profile.name,
        "KUBERNETES_VERSION": v.kubernetes_semver,
        "CONTAINERD_VERSION": v.containerd_version,
        "BUILD_ID": ctx.build_id,
        "CONTAINER_REGISTRY_URL": (m.url or "") if m else "",
        "GITHUB_RELEASES_URL": ctx.options.artifacts.github_releases.rstrip("/"),
    }


def scripts(ctx: RecipeContext) -> Step | None:
    if not ctx.script_sources:
        return None
    env = script_env(ctx)
    ops: list[Put | Run] = []
    for name, content in ctx.script_sources:
        path = f"{DIR}/{name}"
        ops += [Put(path, content, 0o755), Run(f"{shlex.quote(path)}", env=env)]
    ops.append(Run(f"rm -rf {DIR}"))
    return Step("custom-scripts", ", ".join(n for n, _ in ctx.script_sources), tuple(ops))
