"""Lift a published snapshot into Cluster API manifests (``capi-image manifests``).

CAPH's HCloudMachineTemplate is immutable, so a new image means a new template under a new name,
and repointing the KubeadmControlPlane / MachineDeployment ``infrastructureRef`` at it is what
rolls the machines (CAPI book, "updating machine templates").

Existing files are edited by splicing only the changed scalars into the original text, at the
positions ruamel.yaml's round-trip parser reports: comments, key order, quoting and indentation
stay byte-for-byte, which a dump of the parsed tree cannot promise. The new template is a copy
of the old one's text (sshKeys, placement group, network settings survive) with its name,
imageName and, if asked, type spliced. Before anything is written the edited text is parsed
again and compared with the expected documents, so an edit can never change more than the refs.
"""

from __future__ import annotations

import copy
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import LiteralScalarString

from . import topology as topo
from .caph import CAPH_LABEL, caph_images
from .cloud import Cloud

TEMPLATE_KIND = "HCloudMachineTemplate"
INFRA_API_VERSION = "infrastructure.cluster.x-k8s.io/v1beta1"
Role = Literal["control-plane", "workers"]
ROLES: tuple[Role, ...] = ("control-plane", "workers")
# Where each kind keeps its infrastructureRef; v1beta2 KCP nests it one level deeper.
REF_PATHS: dict[str, tuple[tuple[str, ...], ...]] = {
    "KubeadmControlPlane": (
        ("spec", "machineTemplate", "infrastructureRef"),
        ("spec", "machineTemplate", "spec", "infrastructureRef"),
    ),
    "MachineDeployment": (("spec", "template", "spec", "infrastructureRef"),),
}
ROLE_OF = {"KubeadmControlPlane": "control-plane", "MachineDeployment": "workers"}
_SEPARATOR = re.compile(r"^---(\s|$)")
_PLAIN_END = re.compile(r"[\s,}\]#]")
_DNS_BAD = re.compile(r"[^a-z0-9.-]+")


class ManifestError(ValueError):
    """The manifests cannot be produced as asked; nothing was written."""


@dataclass(frozen=True)
class ImageRef:
    """The image to roll out: its caph-image-name value and what the build recorded about it."""

    name: str
    snapshot_id: int | None = None
    server_type: str | None = None
    architecture: str | None = None
    project: str | None = None


def image_from_build_manifest(path: Path) -> ImageRef:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ManifestError(f"cannot read build manifest {path}: {e}") from e
    if not isinstance(data, dict):
        raise ManifestError(f"{path} is not a capi-image build manifest")
    if data.get("result") != "success" or not data.get("caph_image_name"):
        raise ManifestError(
            f"{path} records no published image (result: {data.get('result')!r}, error: {data.get('error')!r})"
        )
    return ImageRef(
        name=str(data["caph_image_name"]),
        snapshot_id=data.get("snapshot_id"),
        server_type=data.get("server_type"),
        architecture=data.get("architecture"),
        project=data.get("project"),
    )


def dns_name(text: str) -> str:
    """A DNS-1123 subdomain fragment (what Kubernetes accepts as metadata.name): lower case,
    each dot-separated label starting and ending with a letter or digit (``k8s_.v1`` ->
    ``k8s.v1``, never ``k8s-.v1``), at most 63 characters per label."""
    labels = (label.strip("-")[:63].strip("-") for label in _DNS_BAD.sub("-", text.lower()).split("."))
    return ".".join(label for label in labels if label)


def new_template_name(old_name: str, old_image: str | None, image: str) -> str:
    """``<old name without the previous image suffix>-<image>``: re-running a rollout does not
    pile up suffixes, and the name says which image the template boots."""
    base = old_name
    if old_image:
        suffix = "-" + dns_name(old_image)
        if base.endswith(suffix) and len(base) > len(suffix):
            base = base[: -len(suffix)]
    if "${" in base:  # a clusterctl template: the variable stays for clusterctl to fill in
        return f"{base}-{dns_name(image)}"
    return dns_name(f"{base}-{dns_name(image)}")[:253].rstrip("-.")


# ---------------------------------------------------------------------------- sources
@dataclass
class Source:
    """One YAML file: its text and its documents as parsed round-trip (with positions)."""

    path: Path
    text: str
    docs: list[Any]

    @property
    def lines(self) -> list[str]:
        return self.text.splitlines(keepends=True)

    @property
    def newline(self) -> str:
        return "\r\n" if "\r\n" in self.text else "\n"


def load_sources(paths: list[Path]) -> list[Source]:
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.suffix in (".yaml", ".yml") and f.is_file())
        elif p.is_file():
            files.append(p)
        else:
            raise ManifestError(f"{p} does not exist")
    if not files:
        raise ManifestError(f"no YAML files in {', '.join(map(str, paths))}")
    sources = []
    for f in files:
        # bytes, not read_text(): universal newlines would turn a CRLF file into LF on write.
        try:
            text = f.read_bytes().decode()
        except UnicodeDecodeError as e:
            raise ManifestError(f"{f} is not UTF-8 text: {e}") from e
        try:
            docs = list(YAML().load_all(text))
        except YAMLError as e:
            raise ManifestError(f"{f} is not valid YAML: {e}") from e
        sources.append(Source(f, text, docs))
    return sources


def _get(node: Any, path: tuple[str | int, ...]) -> Any:
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
    for i, _ in enumerate(_get(doc, ("spec", "workers", "machineDeployments")) or []):
        for base in (("template", "infrastructure"), ("infrastructure",)):
            paths += [("spec", "workers", "machineDeployments", i, *base, key) for key in ("ref", "templateRef")]
    return paths


def ref_paths(doc: Any) -> list[tuple[str | int, ...]]:
    kind = str(_get(doc, ("kind",)))
    if kind == "ClusterClass":
        return _class_ref_paths(doc)
    return list(REF_PATHS.get(kind, ()))


def _meta(doc: Any, key: str) -> str | None:
    value = _get(doc, ("metadata", key))
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
    for src in sources:
        for i, doc in enumerate(src.docs):
            kind = _get(doc, ("kind",))
            for path in ref_paths(doc):
                ref = _get(doc, path)
                if isinstance(ref, dict) and ref.get("kind") == TEMPLATE_KIND and ref.get("name"):
                    refs.append(
                        RefSite(
                            src,
                            i,
                            str(kind),
                            str(doc.get("apiVersion", "")),
                            _meta(doc, "name") or "?",
                            _meta(doc, "namespace"),
                            path,
                            str(ref["name"]),
                        )
                    )
    return refs


def find_templates(sources: list[Source]) -> list[TemplateSite]:
    found = []
    for src in sources:
        for i, doc in enumerate(src.docs):
            if _get(doc, ("kind",)) == TEMPLATE_KIND:
                spec = _get(doc, ("spec", "template", "spec")) or {}
                image, stype = spec.get("imageName"), spec.get("type")
                found.append(
                    TemplateSite(
                        src,
                        i,
                        _meta(doc, "name") or "",
                        _meta(doc, "namespace"),
                        str(image) if image is not None else None,
                        str(stype) if stype is not None else None,
                    )
                )
    return found


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
        m = _PLAIN_END.search(line, col)
        return (m.start() if m else len(line.rstrip("\r\n"))) - col
    # block context: ${VAR}, commas and braces are part of the value; only " #" or the line end
    body = line.rstrip("\r\n")
    m = _BLOCK_END.search(body, col)
    return (m.start() if m else len(body)) - col


def _render_scalar(original: str, value: str) -> str:
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
        return Splice(line, col, length, _render_scalar("", value), drop)
    flow = bool(mapping.fa.flow_style())
    length = _scalar_length(row, col, flow=flow)
    text = _render_scalar(row[col : col + length], value)
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
    seps = [n for n, row in enumerate(lines) if _SEPARATOR.match(row)]
    first = doc.lc.line
    start = max((n for n in seps if n <= first), default=0)
    end = min((n for n in seps if n > first), default=len(lines))
    return start, end


# ---------------------------------------------------------------------------- the plan
@dataclass
class NewTemplate:
    name: str
    role: Role
    server_type: str
    text: str  # one YAML document, starting with "---"
    data: dict[str, Any]  # what it parses to
    old: TemplateSite | None = None


@dataclass
class RefChange:
    site: RefSite
    new: str

    @property
    def pointer(self) -> str:
        return "/" + "/".join(str(p) for p in (*self.site.path, "name"))


@dataclass
class VarChange:
    """A topology variable set to the new image (``site.index`` None: added)."""

    source: Source
    site: topo.VarSite
    new: str

    @property
    def doc(self) -> Any:
        return self.source.docs[self.site.doc_index]


@dataclass
class Rollout:
    image: ImageRef
    templates: list[NewTemplate] = field(default_factory=list)
    changes: list[RefChange] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)
    # server types of templates that already boot the image (a no-op or a rollback): the
    # resolution check covers them too, so a re-run still says which snapshot is in use.
    current: set[str] = field(default_factory=set)
    variables: list[VarChange] = field(default_factory=list)  # topology clusters

    def server_types(self) -> set[str]:
        return {t.server_type for t in self.templates} | self.current


def fresh_templates(image: ImageRef, roles: tuple[Role, ...], cluster_name: str, server_type: str | None) -> Rollout:
    stype = server_type or image.server_type
    if not stype:
        raise ManifestError("no server type: pass --server-type (the build manifest names one)")
    rollout = Rollout(image)
    for role in roles:
        name = dns_name(f"{dns_name(cluster_name)}-{role}-{dns_name(image.name)}")[:253].rstrip("-.")
        data: dict[str, Any] = {
            "apiVersion": INFRA_API_VERSION,
            "kind": TEMPLATE_KIND,
            "metadata": {"name": name},
            "spec": {"template": {"spec": {"imageName": image.name, "type": stype}}},
        }
        buf = io.StringIO()
        YAML().dump(data, buf)
        header = f"# {role} machines boot {CAPH_LABEL}={image.name}" + (
            f" (snapshot {image.snapshot_id})\n" if image.snapshot_id else "\n"
        )
        rollout.templates.append(NewTemplate(name, role, stype, "---\n" + header + buf.getvalue(), data))
    return rollout


def plan_rollout(image: ImageRef, sources: list[Source], roles: tuple[Role, ...], server_type: str | None) -> Rollout:
    """New templates for every template the selected roles' refs name, and the ref changes."""
    rollout = Rollout(image, sources=sources)
    refs = []
    for r in find_refs(sources):
        if r.role not in roles:
            continue
        if r.kind == "ClusterClass":
            variable = topo.patched_image_roles(r.source.docs[r.doc_index]).get(r.role)
            if variable:
                rollout.notes.append(
                    f"ClusterClass {r.name}: {r.role} imageName comes from variable {variable}; "
                    "rolled by setting it in the Clusters (pass their files), not by rotating the template"
                )
                continue
        refs.append(r)
    for src in sources:
        for doc in src.docs:
            for path in ref_paths(doc):
                other = _get(doc, path)
                if isinstance(other, dict) and other.get("kind") not in (None, TEMPLATE_KIND):
                    rollout.notes.append(
                        f"{_get(doc, ('kind',))} {_meta(doc, 'name')} ({src.path}) references {other.get('kind')} "
                        f"{other.get('name')}: skipped (only {TEMPLATE_KIND}s boot from snapshots; bare metal "
                        "machines are installed with installimage)"
                    )
    plan_topology(rollout, sources, roles, server_type)
    if not refs and not rollout.variables and not any(topo.topology_clusters(s.docs) for s in sources):
        raise ManifestError(
            f"no {' or '.join(roles)} object (KubeadmControlPlane, MachineDeployment) referencing an "
            f"{TEMPLATE_KIND}, and no Cluster with spec.topology, in {', '.join(str(s.path) for s in sources)}"
        )
    templates = find_templates(sources)
    new_by_old: dict[tuple[str | None, str], NewTemplate] = {}
    for ref in refs:
        matches = [t for t in templates if t.name == ref.template and t.namespace in (ref.namespace, None)]
        if len(matches) > 1:
            matches = [t for t in matches if t.namespace == ref.namespace] or matches
        if not matches:
            raise ManifestError(
                f"{ref.what} references {TEMPLATE_KIND} '{ref.template}', which is in none of the given files; "
                "pass the file that defines it too"
            )
        if len(matches) > 1:
            raise ManifestError(
                f"{TEMPLATE_KIND} '{ref.template}' is defined more than once ({matches[0].source.path})"
            )
        old = matches[0]
        if old.image_name == image.name and (server_type is None or old.server_type == server_type):
            rollout.notes.append(f"{ref.what} already uses {old.name} with imageName {image.name}")
            if old.server_type:
                rollout.current.add(old.server_type)
            continue
        key = (old.namespace, old.name)
        if key not in new_by_old:
            name, existing = _target_name(old, image, server_type, templates)
            if existing is not None:
                # Rolling back (A -> B -> A), or a server type used before: the template that
                # boots this image on this type is already there, exactly right. Reuse it.
                rollout.notes.append(
                    f"{ref.what}: reusing {existing.name} (imageName {image.name}, type {existing.server_type})"
                )
                rollout.changes.append(RefChange(ref, existing.name))
                if existing.server_type:
                    rollout.current.add(existing.server_type)
                continue
            new_by_old[key] = _copy_template(old, image, ref.role, server_type, name)
            rollout.templates.append(new_by_old[key])
        rollout.changes.append(RefChange(ref, new_by_old[key].name))
    return rollout


def plan_topology(rollout: Rollout, sources: list[Source], roles: tuple[Role, ...], server_type: str | None) -> None:
    """Topology clusters: the image variables of the selected roles set to the image, and the
    machine types they use kept for the architecture check."""
    every_doc = [(str(s.path), d) for s in sources for d in s.docs]
    for src in sources:
        for index, cluster in topo.topology_clusters(src.docs):
            topology = cluster["spec"]["topology"]
            class_name = _get(topology, ("classRef", "name")) or topology.get("class")
            names = topo.class_variables(every_doc, str(class_name) if class_name else None)
            for site in topo.variable_sites(index, cluster, roles, names):
                if site.old == rollout.image.name and site.index is not None:
                    rollout.notes.append(f"{site.what} is already {rollout.image.name}")
                    continue
                rollout.variables.append(VarChange(src, site, rollout.image.name))
            types = topo.machine_types(cluster, roles, names)
            rollout.current |= {server_type} if server_type else set(types)
            if not types and not server_type:
                rollout.notes.append(
                    f"Cluster {_meta(cluster, 'name')}: no machine type variable found ({names.source}); "
                    "the architecture check uses the image's architecture"
                )


def _target_name(
    old: TemplateSite, image: ImageRef, server_type: str | None, templates: list[TemplateSite]
) -> tuple[str, TemplateSite | None]:
    """The name of the template for ``image`` (and the server type), and the existing template
    of that name if it already boots exactly that. A name taken by a template with other
    content gets the server type appended; taken again, it is an error."""
    stype = server_type or old.server_type
    name = new_template_name(old.name, old.image_name, image.name)
    candidates = [name]
    if stype:
        with_type = f"{name}-{dns_name(stype)}" if "${" in name else dns_name(f"{name}-{stype}")[:253].rstrip("-.")
        candidates.append(with_type)
    for candidate in candidates:
        found = [t for t in templates if t.name == candidate and t.namespace == old.namespace]
        if not found:
            return candidate, None
        if found[0].image_name == image.name and found[0].server_type == stype:
            return candidate, found[0]
    raise ManifestError(
        f"{TEMPLATE_KIND} '{candidates[-1]}' already exists in the given files with another image or type; "
        "it cannot be reused (templates are immutable): rename or remove it"
    )


def _copy_template(old: TemplateSite, image: ImageRef, role: Role, server_type: str | None, name: str) -> NewTemplate:
    spec = _get(old.doc, ("spec", "template", "spec"))
    if not isinstance(spec, CommentedMap) or "imageName" not in spec:
        hint = " (it boots from imageURL)" if isinstance(spec, dict) and "imageURL" in spec else ""
        raise ManifestError(
            f"{TEMPLATE_KIND} '{old.name}' ({old.source.path}) has no spec.template.spec.imageName{hint}"
        )
    stype = server_type or old.server_type
    if not stype:
        raise ManifestError(f"{TEMPLATE_KIND} '{old.name}' has no spec.template.spec.type; pass --server-type")
    start, end = doc_span(old.source, old.doc)
    lines = old.source.lines[start:end]
    splices = [
        value_splice(lines, old.doc["metadata"], "name", name, start),
        value_splice(lines, spec, "imageName", image.name, start, drop_comment=True),
    ]
    if server_type and "type" in spec and old.server_type != server_type:
        splices.append(value_splice(lines, spec, "type", server_type, start))
    body = apply_splices(lines, splices)
    if body and _SEPARATOR.match(body[0]):
        body = body[1:]
    while body and not body[-1].strip():
        body.pop()
    if body and not body[-1].endswith("\n"):
        body[-1] += old.source.newline
    data = YAML(typ="safe").load("".join(lines))
    data["metadata"]["name"] = name
    data["spec"]["template"]["spec"]["imageName"] = image.name
    data["spec"]["template"]["spec"]["type"] = stype
    return NewTemplate(name, role, stype, "---" + old.source.newline + "".join(body), data, old)


# ---------------------------------------------------------------------------- the API check
def check_resolution(cloud: Cloud, rollout: Rollout) -> dict[str, int]:
    """Resolve the imageName under CAPH's rule for each server type the new templates use:
    exactly one image of that type's architecture, available, and (if the build said so) the
    snapshot the build published. Returns the image id per server type."""
    client = cloud.client
    resolved: dict[str, int] = {}
    name = rollout.image.name
    concrete = sorted(t for t in rollout.server_types() if "${" not in t)
    variables = sorted(t for t in rollout.server_types() if "${" in t)
    targets: list[tuple[str, str]] = []  # (what, architecture)
    for stype in concrete:
        st = cloud.call(f"look up server type {stype}", lambda s=stype: client.server_types.get_by_name(s))  # type: ignore[misc]
        if st is None:
            raise ManifestError(f"server type '{stype}' does not exist")
        targets.append((f"server type {stype}", str(st.architecture)))
    if not concrete and not variables:
        arches = [rollout.image.architecture] if rollout.image.architecture else ["x86", "arm"]
        # no server type known (a topology cluster without machine type variables)
        targets += [("the image's architecture", a) for a in arches]
        variables = ["the image's architecture"]  # resolved if any one architecture resolves
    elif variables:
        # A clusterctl template: the type is filled in later, so its architecture is unknown.
        arches = [rollout.image.architecture] if rollout.image.architecture else ["x86", "arm"]
        rollout.notes.append(
            f"server type {', '.join(variables)} is a clusterctl variable: the architecture check is skipped "
            f"(checked for {' and '.join(a for a in arches if a)}); pass --server-type to check one"
        )
        targets += [(v, a) for v in variables for a in arches if a]
    for what, arch in targets:
        found = cloud.call(f"resolve imageName {name}", lambda a=arch: caph_images(client, name, a))  # type: ignore[misc]
        if not found:
            if what in variables and any(t[0] == what and t[1] != arch for t in targets):
                continue  # another architecture of the same variable may resolve
            raise ManifestError(
                f"imageName '{name}' resolves to no image for {arch} ({what}): CAPH would report "
                f"ImageNotFound. Is the snapshot published (label {CAPH_LABEL}) in this project?"
            )
        if len(found) > 1:
            ids = ", ".join(f"{i.id} ({i.type})" for i in found)
            raise ManifestError(
                f"imageName '{name}' is ambiguous for {arch} ({what}): images {ids} match "
                f"(label {CAPH_LABEL}=={name} or name {name}); CAPH would report ImageAmbiguous and create no machine"
            )
        stype = what.removeprefix("server type ")
        image = found[0]
        if image.status != "available":
            raise ManifestError(f"image {image.id} for imageName '{name}' is {image.status}, not available yet")
        if rollout.image.snapshot_id is not None and image.id != rollout.image.snapshot_id:
            raise ManifestError(
                f"imageName '{name}' resolves to image {image.id}, but the build published snapshot "
                f"{rollout.image.snapshot_id}"
            )
        assert image.id is not None
        resolved[stype] = image.id
    for v in variables:
        if v not in resolved:
            raise ManifestError(
                f"imageName '{name}' resolves to no image for any architecture: CAPH would report ImageNotFound. "
                f"Is the snapshot published (label {CAPH_LABEL}) in this project?"
            )
    return resolved


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
            value_splice(lines, _get(src.docs[c.site.doc_index], c.site.path), "name", c.new)
            for c in rollout.changes
            if c.site.source is src
        ]
        inserts: dict[int, list[str]] = {}
        for v in rollout.variables:
            if v.source is not src:
                continue
            if v.site.index is not None:
                entry = _node(v.doc, v.site.path)[v.site.index]
                splices.append(value_splice(lines, entry, "value", v.new))
            else:
                try:
                    at, text = topo.insertion(lines, v.doc, v.site.name, _render_scalar("", v.new), src.newline)
                except topo.TopologyEditError as e:
                    raise ManifestError(f"{v.site.what}: {e}") from e
                inserts.setdefault(at, []).append(text)
        for t in rollout.templates:
            if t.old is not None and t.old.source is src:
                _, end = doc_span(src, t.old.doc)
                inserts.setdefault(end, []).append(t.text)
        if not splices and not inserts:
            continue
        edited = list(lines)
        if edited and not edited[-1].endswith("\n"):
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


def _node(doc: Any, path: tuple[str | int, ...]) -> Any:
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
            holder = _node(expected[v.site.doc_index], v.site.path[:-1])
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
        expected.insert(t.old.doc_index + 1, t.data)
    actual = list(safe.load_all(text))
    if actual != expected:
        raise ManifestError(f"internal error: editing {src.path} would change more than the refs; nothing written")


def kustomize_component(rollout: Rollout) -> dict[str, str]:
    """A kustomize Component: the new templates as a resource, the ref changes as JSON6902
    patches that first ``test`` the old name, so a drifted base fails instead of being
    silently re-pointed."""
    patches = []
    for c in rollout.changes:
        group, _, version = c.site.api_version.rpartition("/")
        target: dict[str, str] = {"group": group, "version": version, "kind": c.site.kind, "name": c.site.name}
        if c.site.namespace:
            target["namespace"] = c.site.namespace
        ops: list[dict[str, Any]] = [
            {"op": "test", "path": c.pointer, "value": c.site.template},
            {"op": "replace", "path": c.pointer, "value": c.new},
        ]
        patches.append({"target": target, "patch": LiteralScalarString(_dump(ops))})
    for v in rollout.variables:
        doc = v.doc
        group, _, version = str(doc.get("apiVersion", "")).rpartition("/")
        target = {"group": group, "version": version, "kind": "Cluster", "name": str(_meta(doc, "name"))}
        if _meta(doc, "namespace"):
            target["namespace"] = str(_meta(doc, "namespace"))
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


__all__ = [
    "ROLES",
    "ImageRef",
    "ManifestError",
    "Rollout",
    "check_resolution",
    "edited_files",
    "fresh_templates",
    "image_from_build_manifest",
    "kustomize_component",
    "load_sources",
    "new_template_name",
    "plan_rollout",
]
