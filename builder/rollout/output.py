"""Writing a rollout in place: the edited files, verified by re-parsing."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from . import topology as topo
from .model import SEPARATOR, ManifestError
from .plan import Rollout
from .sources import Source, get_path
from .splicing import Splice, apply_splices, doc_span, render_scalar, value_splice


# ---------------------------------------------------------------------------- output
def edited_files(rollout: Rollout) -> dict[Path, str]:
    """Each touched file's new text: refs spliced, new templates right after the old ones."""
    try:
        return _edited_files(rollout)
    except YAMLError as e:
        raise ManifestError(f"internal error: the edited text does not parse ({e}); nothing written") from e


def _edited_files(rollout: Rollout) -> dict[Path, str]:
    out: dict[Path, str] = {}
    for src in rollout.sources:
        lines = src.lines
        splices = [
            value_splice(lines, get_path(src.docs[c.site.doc_index], c.site.path), "name", c.new)
            for c in rollout.changes
            if c.site.source is src
        ]
        inserts: dict[int, list[str]] = {}
        for v in rollout.variables:
            if v.source is not src:
                continue
            if v.site.index is not None:
                entry = node_at(v.doc, v.site.path)[v.site.index]
                splices.append(value_splice(lines, entry, "value", v.new))
            else:
                try:
                    at, text = topo.insertion(lines, v.doc, v.site.name, render_scalar("", v.new), src.newline)
                except topo.TopologyEditError as e:
                    raise ManifestError(f"{v.site.what}: {e}") from e
                inserts.setdefault(at, []).append(text)
        # A file without a final newline may end inside a block scalar (``|``): a newline added
        # there would change that value, so a template that would follow the last document goes
        # right before it instead.
        ends_open = _ends_open(src)
        for source, old_doc, new_text, _ in rollout.inserted():
            if source is src:
                start, end = doc_span(src, old_doc)
                if _goes_before(src, old_doc):
                    separator = "" if SEPARATOR.match(lines[start]) else "---" + src.newline
                    inserts.setdefault(start, []).append(new_text + separator)
                else:
                    inserts.setdefault(end, []).append(new_text)
        if not splices and not inserts:
            continue
        edited = list(lines)
        if ends_open and any(at >= len(lines) for at in inserts):
            edited[-1] += src.newline
        # bottom-up, so each edit leaves the line numbers above it valid; on one line the
        # splice goes first, then what is inserted before that line
        ops: list[tuple[int, int, Splice | str]] = [(sp.line, 1, sp) for sp in splices]
        ops += [(at, 0, "".join(texts)) for at, texts in inserts.items()]
        for at, _, op in sorted(ops, key=lambda o: (o[0], o[1]), reverse=True):
            if isinstance(op, Splice):
                edited = apply_splices(edited, [op])
            else:
                edited[at:at] = [op]
        text = "".join(edited)
        _verify(src, text, rollout)
        out[src.path] = text
    return out


def _ends_open(src: Source) -> bool:
    return bool(src.lines) and not src.lines[-1].endswith("\n")


def _goes_before(src: Source, old_doc: Any) -> bool:
    """Whether a new template is put before its old one: the old one is the last document of a
    file without a final newline (see _edited_files)."""
    return _ends_open(src) and doc_span(src, old_doc)[1] >= len(src.lines)


def node_at(doc: Any, path: tuple[str | int, ...]) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def _verify(src: Source, text: str, rollout: Rollout) -> None:
    """The edited file must parse to the original documents with exactly the planned changes."""
    safe = YAML(typ="safe")
    expected = [copy.deepcopy(d) for d in safe.load_all(src.text)]
    for c in rollout.changes:
        if c.site.source is src:
            node = expected[c.site.doc_index]
            for key in c.site.path:
                node = node[key]
            node["name"] = c.new
    for v in rollout.variables:
        if v.source is src:
            holder = node_at(expected[v.site.doc_index], v.site.path[:-1])
            last = v.site.path[-1]
            if v.site.index is not None:
                holder[last][v.site.index]["value"] = v.new
            else:
                holder.setdefault(last, []).append({"name": v.site.name, "value": v.new})
    index = {id(doc): i for i, doc in enumerate(src.docs)}
    # the last first, so each insert leaves the indexes before it valid; two new documents after
    # one old one appear in the order they were planned
    for _, (_, old_doc, _, data) in sorted(
        ((n, d) for n, d in enumerate(rollout.inserted()) if d[0] is src),
        key=lambda item: (index[id(item[1][1])], item[0]),
        reverse=True,
    ):
        expected.insert(index[id(old_doc)] + (0 if _goes_before(src, old_doc) else 1), data)
    actual = list(safe.load_all(text))
    if actual != expected:
        raise ManifestError(f"internal error: editing {src.path} would change more than the refs; nothing written")
