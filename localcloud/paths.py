"""Where localcloud keeps things that outlive one run (base images)."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """``$LOCALCLOUD_CACHE``, else ``$XDG_CACHE_HOME/localcloud``, else ``~/.cache/localcloud``."""
    if env := os.environ.get("LOCALCLOUD_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "localcloud"
