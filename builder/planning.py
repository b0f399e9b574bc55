"""From project config to a provision plan: the recipe context, secrets, custom scripts.

Shared by ``capi-image build`` (rendered in preflight, so a bad recipe input fails before any
server exists) and ``capi-image plan`` (no API call at all).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from typing import Any

from provision.options import RecipeContext, Secrets
from provision.plan import Check, Plan, Put, Run
from provision.recipe import build_plan
from provision.steps.mirrors import MirrorCredentialsError
from provision.versions import Versions, VersionsError, load_versions

from . import __version__
from . import log as logmod
from .config import ConfigError, ProjectConfig

# What a plan shows for localcloud's mirror: its port is known only once localcloud runs.
LOCALCLOUD_MIRROR_PLACEHOLDER = "http://10.0.2.2:PORT/__localcloud/mirror/files"


def recipe_context(
    config: ProjectConfig,
    versions: Versions,
    *,
    build_id: str,
    started: dt.datetime,
    arch: str,
    env: Mapping[str, str] = os.environ,
    for_plan: bool = False,
    localcloud_mirror: str | None = None,
) -> RecipeContext:
    """``for_plan``: a missing secret or URL becomes a visible placeholder instead of an error.
    ``localcloud_mirror``: the guest URL of the localcloud endpoint's artifact mirror (preflight
    asks the endpoint for it when the project names ``localcloud`` as a mirror)."""
    options = config.provision
    if for_plan and localcloud_mirror is None and options.uses_localcloud_mirror():
        localcloud_mirror = LOCALCLOUD_MIRROR_PLACEHOLDER
    try:
        options = options.with_mirror(localcloud_mirror)
    except ValueError as e:
        raise ConfigError(str(e)) from e
    mirror = options.registry_mirror
    # a partial recipe (minimal: provenance + sysprep) configures no registry: its secrets are not needed
    lenient = for_plan or config.recipe != "full"
    if mirror is not None:
        try:
            mirror = mirror.resolved(env, placeholder=lenient)
        except ValueError as e:
            raise ConfigError(str(e)) from e
        options = options.model_copy(update={"registry_mirror": mirror})
    secrets = Secrets()
    if mirror is not None and mirror.bake_credentials:
        user = env.get(mirror.username_env or "", "")
        password = env.get(mirror.password_env or "", "")
        if lenient and not (user and password):
            user, password = user or "USERNAME", password or "PASSWORD"
        if not user or not password:
            raise ConfigError(
                f"registry_mirror.bake_credentials is on but ${mirror.username_env} / ${mirror.password_env} are not both set"
            )
        secrets = Secrets(user, password)
        logmod.redact(password, secrets.basic_auth)
    sources = []
    root = config.root.resolve()
    for path in config.script_paths():
        # Scripts run as root on the node: a path climbing out of the config directory
        # (../../etc/passwd) runs only with an explicit opt-in.
        if not path.resolve().is_relative_to(root) and not options.scripts_outside_config:
            raise ConfigError(
                f"custom script {path} is outside the config directory {root}; move it there, or set "
                "provision.scripts_outside_config: true"
            )
        if path.is_dir():
            raise ConfigError(f"custom script {path} is a directory: list each script file in it")
        if not path.is_file():
            raise ConfigError(f"custom script {path} does not exist")
        sources.append((path.name, path.read_bytes()))
    return RecipeContext(
        profile=config.profile,
        versions=versions,
        build_id=build_id,
        tool_version=__version__,
        build_time=started,
        arch=arch,
        options=options,
        secrets=secrets,
        script_sources=tuple(sources),
    )


def render(config: ProjectConfig, ctx: RecipeContext) -> Plan:
    try:
        return build_plan(ctx, config.recipe)
    except MirrorCredentialsError as e:
        raise ConfigError(str(e)) from e


def plan_document(
    config: ProjectConfig, *, build_id: str, started: dt.datetime, env: Mapping[str, str] = os.environ
) -> dict[str, Any]:
    """The resolved recipe as data — steps, versions, URLs, checksums, rendered files — without
    any API call or network access (``capi-image plan``, and the golden plans the tests pin).
    Raises ConfigError on bad input (a var file's included)."""
    try:
        versions = load_versions(config.versions_path())
    except VersionsError as e:
        raise ConfigError(str(e)) from e
    # No API call: the architecture comes from the config or the server type's family.
    arch = config.architecture or ("arm" if config.server_type.startswith("cax") else "x86")
    ctx = recipe_context(config, versions, build_id=build_id, started=started, arch=arch, env=env, for_plan=True)
    rendered = render(config, ctx)
    logmod.redact(ctx.secrets.registry_password, ctx.secrets.basic_auth)
    steps = []
    for step in rendered.steps:
        ops: list[dict[str, Any]] = []
        for op in step.operations:
            if isinstance(op, Run):
                ops.append({"run": op.command, "env": sorted(op.env), **({"kind": op.kind} if op.kind else {})})
            elif isinstance(op, Put):
                text = op.content.decode(errors="replace")
                ops.append({"file": op.path, "mode": f"{op.mode:04o}", "content": text})
            elif isinstance(op, Check):
                ops.append({"check": op.name, "command": op.command, "expect": op.expect, "value": op.value})
        steps.append({"name": step.name, "description": step.description, "operations": ops})
    doc = {
        "project": config.name,
        "recipe": config.recipe,
        "os": config.os,
        "architecture": arch,
        "base_image": config.base_image,
        "versions": versions.model_dump(),
        "steps": steps,
    }
    return logmod.scrub(doc)  # type: ignore[no-any-return]


def plan_text(doc: dict[str, Any]) -> str:
    """``capi-image plan``'s text rendering of ``plan_document``: steps, commands, files, checks."""
    out = [
        f"# project {doc['project']}: recipe {doc['recipe']}, {doc['os']} ({doc['architecture']}) from {doc['base_image']}"
    ]
    out += [f"#   {k} = {v}" for k, v in doc["versions"].items()]
    for step in doc["steps"]:
        out.append(f"\n## step {step['name']}: {step['description']}")
        for op in step["operations"]:
            if "run" in op:
                env = f"  [env: {', '.join(op['env'])}]" if op["env"] else ""
                out.append(f"$ {op['run']}{env}")
            elif "file" in op:
                out += [f"--- file {op['file']} (mode {op['mode']})", op["content"].rstrip("\n"), "---"]
            else:
                out.append(f"? {op['check']}: {op['command']}  => {op['expect']} {op['value']}".rstrip())
    return "\n".join(out) + "\n"
