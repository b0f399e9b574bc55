"""From project config to a provision plan: the recipe context, secrets, custom scripts.

Shared by ``capi-image build`` (rendered in preflight, so a bad recipe input fails before any
server exists) and ``capi-image plan`` (no API call at all).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping

from provision.options import RecipeContext, Secrets
from provision.plan import Plan
from provision.recipe import build_plan
from provision.steps.mirrors import MirrorCredentialsError
from provision.versions import Versions

from . import __version__
from . import log as logmod
from .config import ConfigError, ProjectConfig


def recipe_context(
    config: ProjectConfig,
    versions: Versions,
    *,
    build_id: str,
    started: dt.datetime,
    arch: str,
    env: Mapping[str, str] = os.environ,
    for_plan: bool = False,
) -> RecipeContext:
    """``for_plan``: a missing secret or URL becomes a visible placeholder instead of an error."""
    options = config.provision
    mirror = options.registry_mirror
    if mirror is not None:
        try:
            mirror = mirror.resolved(env, placeholder=for_plan)
        except ValueError as e:
            raise ConfigError(str(e)) from e
        options = options.model_copy(update={"registry_mirror": mirror})
    secrets = Secrets()
    if mirror is not None and mirror.bake_credentials:
        user = env.get(mirror.username_env or "", "")
        password = env.get(mirror.password_env or "", "")
        if for_plan and not (user and password):
            user, password = user or "USERNAME", password or "PASSWORD"
        if not user or not password:
            raise ConfigError(
                f"registry_mirror.bake_credentials is on but ${mirror.username_env} / ${mirror.password_env} are not both set"
            )
        logmod.redact(password)
        secrets = Secrets(user, password)
    sources = []
    for path in config.script_paths():
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
