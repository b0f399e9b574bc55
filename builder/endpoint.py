"""Which API the build talks to, and the embedded localcloud for ``endpoint: localcloud``.

Resolution, like Packer and the hcloud CLI: ``HCLOUD_ENDPOINT`` wins; else the project's
``endpoint``; else Hetzner. ``endpoint: localcloud`` starts localcloud in this process (qemu
backend by default) unless ``HCLOUD_ENDPOINT`` points at one already running.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

from . import log as logmod
from .config import ProjectConfig
from .errors import InputError

HETZNER = "https://api.hetzner.cloud/v1"
# A localcloud accepts any token unless told otherwise. Random, not a fixed word: every token is
# redacted from logs, and a fixed "localcloud" turned every mention of localcloud into ***.
LOCAL_TOKEN = f"localcloud-{secrets.token_hex(8)}"


@dataclass(frozen=True)
class Target:
    endpoint: str
    token: str
    embedded: bool


class EndpointError(InputError):
    """The API cannot be reached as configured (no token, a malformed token, no localcloud
    extra): bad input, exit 2, before any call."""


@contextlib.contextmanager
def target(config: ProjectConfig) -> Iterator[Target]:
    env_endpoint = os.environ.get("HCLOUD_ENDPOINT")
    token = os.environ.get(config.token_env, "")
    logmod.redact(token)  # before anything can print it, in every rendering
    bad = next((i for i, c in enumerate(token) if not 0x21 <= ord(c) <= 0x7E), None)
    if bad is not None:
        # A token pasted with its newline, or with a non-ASCII character, would fail deep in the
        # HTTP layer (and be echoed by it): say so first, without the token.
        raise EndpointError(
            f"${config.token_env} holds a character an API token cannot have (position {bad + 1}: "
            f"{'whitespace' if token[bad].isspace() else 'not printable ASCII'}): check how it was exported"
        )
    if config.endpoint == "localcloud" and not env_endpoint:
        try:
            from localcloud.server import LocalCloud, Settings
        except ImportError as e:
            raise EndpointError(
                f"endpoint 'localcloud' needs the localcloud extra ({e.name} is missing): "
                "pip install 'capi-image[localcloud]' (make image PROJECT=local installs it)"
            ) from e

        lc_cfg = config.localcloud
        settings = Settings(backend=lc_cfg.backend, state_dir=lc_cfg.state_dir, action_times=dict(lc_cfg.action_times))
        with LocalCloud(settings) as lc:
            yield Target(lc.endpoint, token or LOCAL_TOKEN, embedded=True)
        return
    endpoint = env_endpoint or (config.endpoint if config.endpoint not in (None, "localcloud") else HETZNER)
    if not token:
        if config.endpoint == "localcloud":
            token = LOCAL_TOKEN  # a running localcloud accepts any token unless told otherwise
        else:
            raise EndpointError(f"${config.token_env} is not set: the API token of the Hetzner project to build in")
    yield Target(endpoint, token, embedded=False)
