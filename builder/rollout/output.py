"""Writing a rollout: the edited files (verified by re-parsing) or a kustomize Component."""

from __future__ import annotations

import copy
import io
import re
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import LiteralScalarString

from ..caph import CAPH_LABEL
from . import topology as topo
from .model import SEPARATOR, ManifestError
from .plan import Rollout
from .sources import Source, get_path, meta
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
        for t in rollout.templates:
            if t.old is not None and t.old.source is src:
                start, end = doc_span(src, t.old.doc)
                if _goes_before(src, t.old.doc):
                    separator = "" if SEPARATOR.match(lines[start]) else "---" + src.newline
                    inserts.setdefault(start, []).append(t.text + separator)
                else:
                    inserts.setdefault(end, []).append(t.text)
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
    for t in sorted(
        (t for t in rollout.templates if t.old is not None and t.old.source is src),
        key=lambda t: t.old.doc_index if t.old else 0,
        reverse=True,
    ):
        assert t.old is not None
        expected.insert(t.old.doc_index + (0 if _goes_before(src, t.old.doc) else 1), t.data)
    actual = list(safe.load_all(text))
    if actual != expected:
        raise ManifestError(f"internal error: editing {src.path} would change more than the refs; nothing written")


def literal(name: str) -> str:
    """A name as kustomize's patch target reads it: a regular expression, so clusterctl's
    ``${CLUSTER_NAME}-md-0`` (``$`` an anchor there) must be escaped to match itself."""
    return re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", name)


def kustomize_component(rollout: Rollout) -> dict[str, str]:
    """A kustomize Component: the new templates as a resource, the ref changes as JSON6902
    patches that first ``test`` the old name, so a drifted base fails instead of being
    silently re-pointed."""
    patches = []
    for c in rollout.changes:
        group, _, version = c.site.api_version.rpartition("/")
        target: dict[str, str] = {"group": group, "version": version, "kind": c.site.kind, "name": literal(c.site.name)}
        if c.site.namespace:
            target["namespace"] = literal(c.site.namespace)
        ops: list[dict[str, Any]] = [
            {"op": "test", "path": c.pointer, "value": c.site.template},
            {"op": "replace", "path": c.pointer, "value": c.new},
        ]
        patches.append({"target": target, "patch": LiteralScalarString(_dump(ops))})
    for v in rollout.variables:
        doc = v.doc
        group, _, version = str(doc.get("apiVersion", "")).rpartition("/")
        target = {"group": group, "version": version, "kind": "Cluster", "name": literal(str(meta(doc, "name")))}
        if meta(doc, "namespace"):
            target["namespace"] = literal(str(meta(doc, "namespace")))
        if v.site.index is not None:
            ops = [{"op": "test", "path": v.site.pointer, "value": v.site.old}] if isinstance(v.site.old, str) else []
            ops.append({"op": "replace", "path": v.site.pointer, "value": v.new})
        elif "variables" in doc["spec"]["topology"]:
            ops = [{"op": "add", "path": v.site.pointer, "value": {"name": v.site.name, "value": v.new}}]
        else:
            ops = [{"op": "add", "path": "/spec/topology/variables", "value": [{"name": v.site.name, "value": v.new}]}]
        patches.append({"target": target, "patch": LiteralScalarString(_dump(ops))})
    kustomization: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1alpha1",
        "kind": "Component",
        "resources": ["hcloudmachinetemplates.yaml"],
        "patches": patches,
    }
    header = f"# Rolls out {CAPH_LABEL}={rollout.image.name}: add this directory to your kustomization's components.\n"
    return {
        "kustomization.yaml": header + _dump(kustomization),
        "hcloudmachinetemplates.yaml": "".join(t.text for t in rollout.templates),
    }


def _dump(data: Any) -> str:
    yaml = YAML()
    yaml.default_flow_style = False
    buf = io.StringIO()
    yaml.dump(data, buf)
    return buf.getvalue()
