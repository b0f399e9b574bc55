"""Which API the build talks to, and the embedded localcloud for ``endpoint: localcloud``.

Resolution, like Packer and the hcloud CLI: ``HCLOUD_ENDPOINT`` wins; else the project's
``endpoint``; else Hetzner. ``endpoint: localcloud`` starts localcloud in this process (qemu
backend by default) unless ``HCLOUD_ENDPOINT`` points at one already running.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import tomllib
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from . import log as logmod
from .config import ProjectConfig
from .errors import InputError

HETZNER = "https://api.hetzner.cloud/v1"
log = logmod.get("capi-image.endpoint")
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


def hcloud_cli_token() -> tuple[str, str] | None:
    """The token of the hcloud CLI's active context (``$HCLOUD_CONTEXT``, else the config's
    ``active_context``; config ``$HCLOUD_CONFIG``, else ``~/.config/hcloud/cli.toml``), and
    where it came from — what ``hcloud`` users have instead of ``$HCLOUD_TOKEN``."""
    path = Path(os.environ.get("HCLOUD_CONFIG") or Path.home() / ".config" / "hcloud" / "cli.toml")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise EndpointError(f"the hcloud CLI config {path} cannot be read: {e}") from e
    name = os.environ.get("HCLOUD_CONTEXT") or data.get("active_context")
    if not name:
        return None
    for context in data.get("contexts") or []:
        if isinstance(context, dict) and context.get("name") == name and context.get("token"):
            return str(context["token"]), f"hcloud CLI context '{name}' ({path})"
    raise EndpointError(f"the hcloud CLI context '{name}' is not in {path} (or has no token): `hcloud context list`")


def check_endpoint(endpoint: str, source: str) -> str:
    """A base URL the SDK can use: http(s), a host, and a path (Hetzner's ends in /v1)."""
    url = urllib.parse.urlsplit(endpoint)
    if url.scheme not in ("http", "https") or not url.hostname:
        guess = f"https://{endpoint.split('://')[-1]}"
        raise EndpointError(f"{source} '{endpoint}' is not an http(s) URL: did you mean {guess}?")
    if url.path.rstrip("/") == "":
        raise EndpointError(
            f"{source} '{endpoint}' has no API path: Hetzner's is {HETZNER} (the path ends in /v1), "
            f"so try {endpoint.rstrip('/')}/v1"
        )
    return endpoint


def check_reachable(endpoint: str, source: str, timeout: float = 5.0) -> None:
    """Connect once (TCP, no API request): an endpoint that is down or misspelled fails here in
    seconds with one line, not after a minute and a half of retries."""
    url = urllib.parse.urlsplit(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout):
            pass
    except socket.gaierror as e:
        raise EndpointError(
            f"cannot reach the API at {endpoint} ({source}): {url.hostname} does not resolve ({e.strerror})"
        ) from e
    except OSError as e:
        reason = e.strerror or type(e).__name__
        if isinstance(e, TimeoutError):
            reason = f"no answer within {timeout:.0f} s"
        raise EndpointError(f"cannot reach the API at {endpoint} ({source}): {reason}") from e


@contextlib.contextmanager
def target(config: ProjectConfig) -> Iterator[Target]:
    env_endpoint = os.environ.get("HCLOUD_ENDPOINT")
    token = os.environ.get(config.token_env, "")
    if not token and not (config.endpoint == "localcloud" and not env_endpoint):
        found = hcloud_cli_token()
        if found is not None:
            token, where = found
            logmod.redact(token)
            log.info("token.from_hcloud_cli", source=where)
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
    source = "HCLOUD_ENDPOINT" if env_endpoint else "the project's endpoint" if config.endpoint else "Hetzner's API"
    check_endpoint(endpoint, source)
    if not token:
        if config.endpoint == "localcloud":
            token = LOCAL_TOKEN  # a running localcloud accepts any token unless told otherwise
        else:
            raise EndpointError(
                f"${config.token_env} is not set (nor an hcloud CLI context): export the API token of the Hetzner "
                "project (Security → API tokens, read & write), or `hcloud context create`"
            )
    check_reachable(endpoint, source)
    yield Target(endpoint, token, embedded=False)
