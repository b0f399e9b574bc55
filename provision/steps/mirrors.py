"""Step 6, registry mirrors (the seed's cri.sh): a hosts.toml per registry pointing at a Harbor
proxy-cache project. Runs before the kubernetes step so the image pre-pull uses the mirror."""

from __future__ import annotations

from typing import Any

import tomli_w

from ..options import RecipeContext, RegistryMirror, Secrets
from ..plan import Put, Run, Step
from .containerd import CERTS_DIR

# docker.io's registry API lives on registry-1.docker.io (cri.sh writes https://docker.io).
UPSTREAM = {"docker.io": "https://registry-1.docker.io"}


class MirrorCredentialsError(ValueError):
    pass


def hosts_toml(mirror: RegistryMirror, registry: str, secrets: Secrets) -> dict[str, Any]:
    host_url = f"{mirror.url}/v2/{mirror.project_pattern.format(registry=registry)}"
    host: dict[str, Any] = {"capabilities": ["pull", "resolve"], "override_path": True}
    if mirror.bake_credentials:
        if not (secrets.registry_username and secrets.registry_password):
            raise MirrorCredentialsError(
                "registry_mirror.bake_credentials needs the username and password env vars set"
            )
        host["header"] = {"authorization": f"Basic {secrets.basic_auth}"}
    return {"server": UPSTREAM.get(registry, f"https://{registry}"), "host": {host_url: host}}


def mirrors(ctx: RecipeContext) -> Step | None:
    m = ctx.options.registry_mirror
    if m is None:
        return None
    if (m.username_env or m.password_env) and not m.bake_credentials:
        raise MirrorCredentialsError(
            "registry credentials would be baked into the image: set registry_mirror.bake_credentials: true "
            "to accept that, or use a public proxy-cache project"
        )
    mode = 0o600 if m.bake_credentials else 0o644
    ops: list[Put | Run] = [Run(f"install -d -m 0755 {CERTS_DIR}")]
    for registry in m.registries:
        content = tomli_w.dumps(hosts_toml(m, registry, ctx.secrets)).encode()
        ops.append(Put(f"{CERTS_DIR}/{registry}/hosts.toml", content, mode))
    return Step("registry-mirrors", f"hosts.toml for {len(m.registries)} registries via {m.url}", tuple(ops))
