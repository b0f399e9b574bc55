"""A kustomize source tree (CAPH's ``templates/cluster-templates``: bases, flavors, patches) read
as kustomize reads it: which files are resources and which are patches.

A strategic-merge patch file looks like a resource (``kind: HCloudMachineTemplate``, a name)
but only changes the object of that name; read as a resource it was a second definition of the
template ("defined more than once"), and after a rollout it patched only the old template, so
the new one silently lost what the patch adds (CAPH's ``placementGroupName``). Knowing the patch
files lets the rollout carry each one over to the new template's name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from .model import ManifestError

NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
_REMOTE = ("://", "github.com/", "git@")


@dataclass
class Tree:
    """The files kustomizations under the given paths use: ``resources`` (also ``bases`` and
    ``components``' resources) and ``patches`` (``patches[].path``, ``patchesStrategicMerge``);
    ``kustomizations`` are the kustomization files themselves and ``operations`` JSON 6902 patch
    files (lists of operations): neither holds cluster documents."""

    resources: set[Path] = field(default_factory=set)
    patches: set[Path] = field(default_factory=set)
    kustomizations: set[Path] = field(default_factory=set)
    operations: set[Path] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)

    def holds_documents(self, path: Path) -> bool:
        resolved = path.resolve()
        return path.name not in NAMES and resolved not in self.kustomizations | self.operations


def kustomization_in(folder: Path) -> Path | None:
    return next((folder / n for n in NAMES if (folder / n).is_file()), None)


def follow(kustomizations: list[Path], *, skip: Path | None = None) -> Tree:
    """Every file the given kustomizations use, following directory entries (bases, overlays,
    components) to their own kustomizations; ``skip`` (this tool's --kustomize output) is left out."""
    tree = Tree()
    pending = [k.resolve() for k in kustomizations]
    while pending:
        path = pending.pop()
        if path in tree.kustomizations or (skip is not None and path.is_relative_to(skip)):
            continue
        tree.kustomizations.add(path)
        data = _load(path)
        here = path.parent
        entries = [*_strings(data.get("resources")), *_strings(data.get("bases")), *_strings(data.get("components"))]
        for entry in entries:
            if any(mark in entry for mark in _REMOTE):
                tree.notes.append(f"{path}: remote resource {entry} not read")
                continue
            target = (here / entry).resolve()
            if skip is not None and target.is_relative_to(skip):
                continue
            if target.is_dir():
                inner = kustomization_in(target)
                if inner is not None:
                    pending.append(inner.resolve())
            elif target.is_file():
                tree.resources.add(target)
        patch_paths: list[Any] = [p.get("path") for p in data.get("patches") or [] if isinstance(p, dict)]
        patch_paths += [p for p in _strings(data.get("patchesStrategicMerge")) if "\n" not in p]
        for entry in patch_paths:
            if isinstance(entry, str) and (here / entry).is_file():
                tree.patches.add((here / entry).resolve())
        for p in data.get("patchesJson6902") or []:
            if isinstance(p, dict) and isinstance(p.get("path"), str):
                tree.operations.add((here / p["path"]).resolve())
    tree.resources -= tree.patches
    return tree


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _load(path: Path) -> dict[str, Any]:
    try:
        data = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, YAMLError) as e:
        raise ManifestError(f"cannot read kustomization {path}: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ManifestError(f"{path} is not a kustomization (a mapping expected)")
    return data
