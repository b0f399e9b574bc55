"""The YAML files given: their documents, the refs to machine templates and the templates."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from . import kustomization as kz
from .model import REF_PATHS, TEMPLATE_KIND, ManifestError, Role


# ---------------------------------------------------------------------------- sources
@dataclass
class Source:
    """One YAML file: its text and its documents as parsed round-trip (with positions).
    ``patch``: a kustomize strategic-merge patch file (its documents change objects defined
    elsewhere; they define nothing)."""

    path: Path
    text: str
    docs: list[Any]
    patch: bool = False

    @property
    def lines(self) -> list[str]:
        return self.text.splitlines(keepends=True)

    @property
    def newline(self) -> str:
        return "\r\n" if "\r\n" in self.text else "\n"


def load_sources(paths: list[Path], *, exclude: Path | None = None) -> list[Source]:
    """The cluster files to read: the given files, every YAML file under the given folders, and
    whatever the kustomizations among them use (a CAPH flavor's ``../bases``). Files a
    kustomization names as patches are read as patches; kustomization files themselves are not
    cluster files. ``exclude`` (the --kustomize component, when it lies inside a --cluster
    folder) is this tool's own output, never a cluster file: read as one, a re-run "reused" its
    templates and wrote the component empty."""
    found: list[Path] = []
    skip = exclude.resolve() if exclude is not None else None
    for p in paths:
        if p.is_dir():
            found += sorted(
                f
                for f in p.rglob("*")
                if (f.suffix in (".yaml", ".yml") or f.name in kz.NAMES)
                and f.is_file()
                and (skip is None or not f.resolve().is_relative_to(skip))
            )
        elif p.is_file():
            found.append(p)
        else:
            raise ManifestError(f"{p} does not exist")
    tree = kz.follow([f for f in found if f.name in kz.NAMES], skip=skip)
    files: dict[Path, Path] = {}  # resolved -> as the user would name it
    for f in [*found, *sorted(tree.resources), *sorted(tree.patches)]:
        if tree.holds_documents(f):
            files.setdefault(f.resolve(), f)
    if not files:
        raise ManifestError(f"no YAML files in {', '.join(map(str, paths))}")
    sources = []
    for resolved, f in files.items():
        # bytes, not read_text(): universal newlines would turn a CRLF file into LF on write.
        try:
            text = f.read_bytes().decode()
        except UnicodeDecodeError as e:
            raise ManifestError(f"{f} is not UTF-8 text: {e}") from e
        try:
            docs = list(YAML().load_all(text))
        except YAMLError as e:
            raise ManifestError(f"{f} is not valid YAML: {e}") from e
        sources.append(Source(f, text, docs, patch=resolved in tree.patches))
    return sources


def get_path(node: Any, path: tuple[str | int, ...]) -> Any:
    for key in path:
        if isinstance(key, int):
            if not isinstance(node, list) or key >= len(node):
                return None
        elif not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _class_ref_paths(doc: Any) -> list[tuple[str | int, ...]]:
    """Where a ClusterClass names machine templates (v1beta1 ``ref``, v1beta2 ``templateRef``):
    the control plane's machineInfrastructure and each machine deployment class's infrastructure."""
    paths: list[tuple[str | int, ...]] = [
        ("spec", "controlPlane", "machineInfrastructure", key) for key in ("ref", "templateRef")
    ]
    for i, _ in enumerate(get_path(doc, ("spec", "workers", "machineDeployments")) or []):
        for base in (("template", "infrastructure"), ("infrastructure",)):
            paths += [("spec", "workers", "machineDeployments", i, *base, key) for key in ("ref", "templateRef")]
    return paths


def ref_paths(doc: Any) -> list[tuple[str | int, ...]]:
    kind = str(get_path(doc, ("kind",)))
    if kind == "ClusterClass":
        return _class_ref_paths(doc)
    return list(REF_PATHS.get(kind, ()))


def meta(doc: Any, key: str) -> str | None:
    value = get_path(doc, ("metadata", key))
    return str(value) if value is not None else None


@dataclass
class RefSite:
    """An infrastructureRef (in a KCP or MachineDeployment) naming an HCloudMachineTemplate."""

    source: Source
    doc_index: int
    kind: str
    api_version: str
    name: str
    namespace: str | None
    path: tuple[str | int, ...]
    template: str

    @property
    def role(self) -> Role:
        if self.kind == "ClusterClass":
            return "control-plane" if "controlPlane" in self.path else "workers"
        return "control-plane" if self.kind == "KubeadmControlPlane" else "workers"

    @property
    def what(self) -> str:
        return f"{self.kind} {self.name} ({self.source.path})"


@dataclass
class TemplateSite:
    source: Source
    doc_index: int
    name: str
    namespace: str | None
    image_name: str | None
    server_type: str | None

    @property
    def doc(self) -> Any:
        return self.source.docs[self.doc_index]


def find_refs(sources: list[Source]) -> list[RefSite]:
    refs = []
    for src in (s for s in sources if not s.patch):
        for i, doc in enumerate(src.docs):
            kind = get_path(doc, ("kind",))
            for path in ref_paths(doc):
                ref = get_path(doc, path)
                if isinstance(ref, dict) and ref.get("kind") == TEMPLATE_KIND and ref.get("name"):
                    refs.append(
                        RefSite(
                            src,
                            i,
                            str(kind),
                            str(doc.get("apiVersion", "")),
                            meta(doc, "name") or "?",
                            meta(doc, "namespace"),
                            path,
                            str(ref["name"]),
                        )
                    )
    return refs


def find_templates(sources: list[Source]) -> list[TemplateSite]:
    found = []
    for src in (s for s in sources if not s.patch):
        for i, doc in enumerate(src.docs):
            if get_path(doc, ("kind",)) == TEMPLATE_KIND:
                spec = get_path(doc, ("spec", "template", "spec")) or {}
                image, stype = spec.get("imageName"), spec.get("type")
                found.append(
                    TemplateSite(
                        src,
                        i,
                        meta(doc, "name") or "",
                        meta(doc, "namespace"),
                        str(image) if image is not None else None,
                        str(stype) if stype is not None else None,
                    )
                )
    return found
