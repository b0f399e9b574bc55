"""Reading the text files users hand the tool (project files, var files, manifests prune reads):
UTF-8, or UTF-8/16/32 with a byte-order mark (an editor on Windows saves UTF-16 with one);
anything else is refused with one line naming the file — never read as garbage or skipped."""

from __future__ import annotations

import codecs
from pathlib import Path

# Longest first: the UTF-32 LE mark starts with the UTF-16 LE one.
BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


class TextFileError(ValueError):
    """A file that is not text the tool can read."""


def decode_text(data: bytes, what: str) -> str:
    for bom, encoding in BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError as e:
                raise TextFileError(f"{what} starts with a {encoding} byte-order mark but is not {encoding}") from e
    if b"\0" in data:
        raise TextFileError(
            f"{what} is not a text file (NUL bytes: binary, or UTF-16 without a byte-order mark): save it as UTF-8"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise TextFileError(f"{what} is not UTF-8 text (byte {e.start} of {len(data)}): save it as UTF-8") from e


def read_text(path: Path, what: str) -> str:
    """The file as text; OSError (missing, a directory, unreadable) is the caller's to word."""
    return decode_text(path.read_bytes(), what)
