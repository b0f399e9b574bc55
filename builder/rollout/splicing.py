"""Editing YAML text in place: a scalar replaced at the position ruamel.yaml reports."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

from .model import PLAIN_END, SEPARATOR, ManifestError
from .sources import Source


# ---------------------------------------------------------------------------- splicing
@dataclass(frozen=True)
class Splice:
    line: int
    col: int
    length: int
    text: str
    drop_lines: int = 0  # continuation lines of a block scalar (``>-``/``|``) that go with it


_BLOCK_END = re.compile(r"\s+#|\s*$")


def _scalar_length(line: str, col: int, *, flow: bool = True) -> int:
    quote = line[col] if col < len(line) else ""
    if quote in ("'", '"'):
        end = col + 1
        while end < len(line):
            if line[end] == quote:
                if quote == "'" and line[end + 1 : end + 2] == "'":
                    end += 2
                    continue
                return end + 1 - col
            end += 2 if quote == '"' and line[end] == "\\" else 1
        raise ManifestError(f"multi-line quoted scalar at column {col + 1} is not supported: {line.strip()}")
    if flow:  # inside {...} or [...], a plain scalar ends at , } ] too
        m = PLAIN_END.search(line, col)
        return (m.start() if m else len(line.rstrip("\r\n"))) - col
    # block context: ${VAR}, commas and braces are part of the value; only " #" or the line end
    body = line.rstrip("\r\n")
    m = _BLOCK_END.search(body, col)
    return (m.start() if m else len(body)) - col


def render_scalar(original: str, value: str) -> str:
    """The new value in the original's quoting; plain only where YAML keeps it a string."""
    if original[:1] == "'":
        return "'" + value.replace("'", "''") + "'"
    if original[:1] == '"':
        return json.dumps(value)
    try:
        parsed = YAML(typ="safe").load(f"k: {value}")
    except YAMLError:
        parsed = None
    return value if isinstance(parsed, dict) and parsed.get("k") == value else json.dumps(value)


def value_splice(
    lines: list[str], mapping: CommentedMap, key: str, value: str, line_offset: int = 0, *, drop_comment: bool = False
) -> Splice:
    line, col = mapping.lc.value(key)
    line -= line_offset
    row = lines[line]
    if row[col : col + 1] in (">", "|"):
        # A block scalar (imageName: >-): its text is on the following, deeper-indented lines.
        # It becomes one plain (or quoted) scalar on the key's line.
        key_indent = mapping.lc.key(key)[1]
        drop = 0
        for following in lines[line + 1 :]:
            stripped = following.strip()
            if stripped and len(following) - len(following.lstrip()) <= key_indent:
                break
            drop += 1
        while drop and not lines[line + drop].strip():
            drop -= 1  # blank lines after the scalar stay
        length = len(row.rstrip("\r\n")) - col
        return Splice(line, col, length, render_scalar("", value), drop)
    flow = bool(mapping.fa.flow_style())
    length = _scalar_length(row, col, flow=flow)
    text = render_scalar(row[col : col + length], value)
    if drop_comment:  # a comment about the old image would mislead on the new one
        rest = row[col + length :].rstrip("\r\n")
        if rest.lstrip().startswith("#"):
            length += len(rest)
    return Splice(line, col, length, text)


def apply_splices(lines: list[str], splices: list[Splice]) -> list[str]:
    out = list(lines)
    for s in sorted(splices, key=lambda s: (s.line, s.col), reverse=True):
        row = out[s.line]
        out[s.line] = row[: s.col] + s.text + row[s.col + s.length :]
        del out[s.line + 1 : s.line + 1 + s.drop_lines]
    return out


def doc_span(src: Source, doc: CommentedMap) -> tuple[int, int]:
    """Lines [start, end) of the document holding ``doc``, its leading ``---`` included."""
    lines = src.lines
    seps = [n for n, row in enumerate(lines) if SEPARATOR.match(row)]
    first = doc.lc.line
    start = max((n for n in seps if n <= first), default=0)
    end = min((n for n in seps if n > first), default=len(lines))
    return start, end


def copy_document(src: Source, doc: CommentedMap, edits: list[tuple[CommentedMap, str, str]]) -> str:
    """The text of ``doc`` as a new document (``---`` first, no trailing blank lines) with each
    ``(mapping, key, value)`` spliced in; a comment after an edited ``imageName`` is dropped (it
    would describe the old image)."""
    start, end = doc_span(src, doc)
    lines = src.lines[start:end]
    splices = [
        value_splice(lines, node, key, value, start, drop_comment=key == "imageName") for node, key, value in edits
    ]
    body = apply_splices(lines, splices)
    if body and SEPARATOR.match(body[0]):
        body = body[1:]
    while body and not body[-1].strip():
        body.pop()
    if body and not body[-1].endswith("\n"):
        body[-1] += src.newline
    return "---" + src.newline + "".join(body)
