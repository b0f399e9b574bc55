"""Command-line values checked before anything costs money: ids, names, output paths."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from .errors import InputError

# A build id is a label value (it labels everything the build creates): Hetzner's rule.
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")


def build_id(value: str | None, option: str = "--build-id") -> str | None:
    if value is None:
        return None
    if not _LABEL_VALUE.match(value):
        raise InputError(
            f"{option} {value!r} cannot label resources: 1-63 characters, letters and digits at both ends, -_. between"
        )
    return value


def not_empty(value: str | None, option: str) -> str | None:
    if value is not None and not value.strip():
        raise InputError(f"{option} is empty: name something")
    return value


def output_path(path: Path | None, option: str) -> Path | None:
    """A file the command will write at its end: checked now, so a build does not publish an
    image and then fail to say so."""
    if path is None:
        return None
    if path.is_dir():
        raise InputError(f"{option} {path} is a directory: name a file")
    writable_dir(path.parent, f"{option} {path}")
    if path.exists() and not os.access(path, os.W_OK):
        raise InputError(f"{option} {path} cannot be written")
    return path


def writable_dir(folder: Path, what: str) -> Path:
    """``folder`` exists (made if missing) and a file can be created in it: tried, not guessed
    (root passes every permission check, yet not a read-only or full file system)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".capi-image-probe-"):
            pass
    except OSError as e:
        raise InputError(f"{what}: cannot write in {folder} ({e.strerror or e})") from e
    return folder
