"""A rollout as a kustomize Component: the new templates as a resource, the ref changes as
JSON 6902 patches, the tree's template patches carried to the new names."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import LiteralScalarString

from ..caph import CAPH_LABEL
from .model import TEMPLATE_KIND, ManifestError
from .plan import Rollout
from .sources import meta

KUSTOMIZATION = "kustomization.yaml"
TEMPLATES = "hcloudmachinetemplates.yaml"
HEADER = f"# Rolls out {CAPH_LABEL}="


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
    for copy in rollout.patches:  # the tree's patches for the old templates, for the new ones
        patches.append({"patch": LiteralScalarString(copy.text.split(copy.source.newline, 1)[1])})
    kustomization: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1alpha1",
        "kind": "Component",
        "resources": [TEMPLATES],
        "patches": patches,
    }
    header = f"{HEADER}{rollout.image.name}: add this directory to your kustomization's components.\n"
    return {
        KUSTOMIZATION: header + _dump(kustomization),
        TEMPLATES: "".join(t.text for t in rollout.templates),
    }


def write_component(rollout: Rollout, folder: Path) -> list[str]:
    """Write the component into ``folder``. A component written before (image A, now B) keeps
    A's templates and the patches carried to them: the cluster's machines still use them until
    B has rolled out, and a GitOps tool would prune templates that vanish from the output
    mid-rollout (old templates go when the user says so). A kustomization this tool did not
    write is never overwritten."""
    files = kustomize_component(rollout)
    kustomization, templates = folder / KUSTOMIZATION, folder / TEMPLATES
    earlier_kz = kustomization.read_text(encoding="utf-8") if kustomization.is_file() else None
    if earlier_kz is not None and not earlier_kz.startswith(HEADER):
        raise ManifestError(
            f"{kustomization} exists and was not written by capi-image; --kustomize writes its own "
            "kustomization.yaml there: give a directory of its own (and list it under your kustomization's components)"
        )
    if templates.is_file() and earlier_kz is not None:
        files[TEMPLATES] = keep_earlier_templates(templates.read_text(encoding="utf-8"), files[TEMPLATES])
        kept = {str(meta(d, "name")) for d in YAML(typ="safe").load_all(files[TEMPLATES]) if isinstance(d, dict)}
        files[KUSTOMIZATION] = _keep_earlier_patches(earlier_kz, files[KUSTOMIZATION], kept)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
        written.append(str(folder / name))
    return written


def keep_earlier_templates(earlier: str, new: str) -> str:
    """The templates of ``earlier`` that ``new`` does not define again, then ``new``."""
    yaml = YAML()
    new_names = {str(meta(d, "name")) for d in yaml.load_all(new) if isinstance(d, dict)}
    kept = []
    for doc in yaml.load_all(earlier):
        if isinstance(doc, dict) and str(meta(doc, "name")) not in new_names:
            kept.append("---\n" + _dump(doc))
    return "".join(kept) + new


def _keep_earlier_patches(earlier: str, new: str, templates: set[str]) -> str:
    """``new`` plus the earlier component's patches of templates it still holds."""
    yaml = YAML()
    old_data, new_data = yaml.load(earlier) or {}, yaml.load(new)
    have = {str(p.get("patch")) for p in new_data.get("patches") or []}
    kept = False
    for p in old_data.get("patches") or []:
        body = str(p.get("patch", "")) if isinstance(p, dict) else ""
        try:
            target = YAML(typ="safe").load(body) if "target" not in p else None
        except YAMLError:
            continue
        if (
            isinstance(target, dict)
            and target.get("kind") == TEMPLATE_KIND
            and meta(target, "name") in templates
            and body not in have
        ):
            new_data.setdefault("patches", []).append({"patch": LiteralScalarString(body)})
            kept = True
    return new.split("\n", 1)[0] + "\n" + _dump(new_data) if kept else new


def _dump(data: Any) -> str:
    yaml = YAML()
    yaml.default_flow_style = False
    buf = io.StringIO()
    yaml.dump(data, buf)
    return buf.getvalue()
