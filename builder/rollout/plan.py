"""What a rollout changes: new templates and repointed refs, or topology variables."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from ..caph import CAPH_LABEL
from . import topology as topo
from .model import (
    INFRA_API_VERSION,
    TEMPLATE_KIND,
    ImageRef,
    ManifestError,
    Role,
    dns_name,
    new_template_name,
)
from .patches import PatchCopy, carry
from .sources import RefSite, Source, TemplateSite, find_refs, find_templates, get_path, meta, ref_paths
from .splicing import copy_document, doc_span


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
    patches: list[PatchCopy] = field(default_factory=list)  # kustomize patches carried to new templates

    def inserted(self) -> list[tuple[Source, Any, str, dict[str, Any]]]:
        """New documents of the edited files: (file, the document they follow, text, data)."""
        docs = [(t.old.source, t.old.doc, t.text, t.data) for t in self.templates if t.old is not None]
        return docs + [(p.source, p.doc, p.text, p.data) for p in self.patches]

    def carry_patches(self, old: TemplateSite, new: str, server_type: str | None) -> None:
        for copy in carry(self.sources, old.name, old.namespace, new, self.image.name, server_type):
            if any(p.source is copy.source and p.name == new for p in self.patches):
                continue  # two refs to one template
            self.patches.append(copy)
            self.notes.append(f"patch {copy.source.path} for {old.name} carried to {new}")

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


ROLLED_KINDS = ("KubeadmControlPlane", "MachineDeployment", "ClusterClass", TEMPLATE_KIND)


def unrolled_references(sources: list[Source]) -> list[str]:
    """Objects of other kinds that point at an HCloudMachineTemplate (a TalosControlPlane's
    ``spec.infrastructureTemplate``, a MachineSet, a MachinePool): said, not silently skipped —
    their machines keep the old image until someone repoints them."""
    notes: list[str] = []

    def walk(node: Any, where: str, doc: Any, src: Source) -> None:
        if isinstance(node, dict):
            if node.get("kind") == TEMPLATE_KIND and node.get("name") and node is not doc:
                notes.append(
                    f"{doc.get('kind')} {meta(doc, 'name')} ({src.path}) points at {TEMPLATE_KIND} "
                    f"{node.get('name')} through {where or '(document)'}: not rolled (only KubeadmControlPlane, "
                    "MachineDeployment and ClusterClass refs are); repoint it to the new template by hand"
                )
            for key, value in node.items():
                walk(value, f"{where}.{key}" if where else str(key), doc, src)
        elif isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, f"{where}[{i}]", doc, src)

    for src in sources:
        for doc in src.docs:
            if isinstance(doc, dict) and doc.get("kind") not in ROLLED_KINDS and doc.get("kind") != "Cluster":
                walk(doc, "", doc, src)
    return notes


def plan_rollout(image: ImageRef, sources: list[Source], roles: tuple[Role, ...], server_type: str | None) -> Rollout:
    """New templates for every template the selected roles' refs name, and the ref changes."""
    rollout = Rollout(image, sources=sources)
    refs = []
    by_variable: list[str] = []  # "ClusterClass quick-start (variable hcloudWorkerMachineImageName)"
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
                by_variable.append(f"ClusterClass {r.name} (variable {variable})")
                continue
        refs.append(r)
    for src in sources:
        for doc in src.docs:
            for path in ref_paths(doc):
                other = get_path(doc, path)
                if isinstance(other, dict) and other.get("kind") not in (None, TEMPLATE_KIND):
                    rollout.notes.append(
                        f"{get_path(doc, ('kind',))} {meta(doc, 'name')} ({src.path}) references {other.get('kind')} "
                        f"{other.get('name')}: skipped (only {TEMPLATE_KIND}s boot from snapshots; bare metal "
                        "machines are installed with installimage)"
                    )
    rollout.notes += unrolled_references(sources)
    plan_topology(rollout, sources, roles, server_type)
    if not refs and not rollout.variables and not any(topo.topology_clusters(s.docs) for s in sources):
        if by_variable:
            raise ManifestError(
                f"the image comes from the Cluster's variables: {', '.join(dict.fromkeys(by_variable))} "
                "patch imageName from them; pass the Cluster file(s) that use the class (spec.topology) too"
            )
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
                f"{TEMPLATE_KIND} '{ref.template}' is defined more than once: "
                + ", ".join(f"{t.source.path} (document {t.doc_index + 1})" for t in matches)
                + "; if one is a kustomize patch, give the folder whose kustomization.yaml lists it (read as a patch)"
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
                rollout.carry_patches(old, existing.name, server_type)
                if existing.server_type:
                    rollout.current.add(existing.server_type)
                continue
            new_by_old[key] = _copy_template(old, image, ref.role, server_type, name)
            rollout.templates.append(new_by_old[key])
            rollout.carry_patches(old, name, server_type)
        rollout.changes.append(RefChange(ref, new_by_old[key].name))
    return rollout


def plan_topology(rollout: Rollout, sources: list[Source], roles: tuple[Role, ...], server_type: str | None) -> None:
    """Topology clusters: the image variables of the selected roles set to the image, and the
    machine types they use kept for the architecture check."""
    every_doc = [(str(s.path), d) for s in sources for d in s.docs]
    for src in sources:
        for index, cluster in topo.topology_clusters(src.docs):
            topology = cluster["spec"]["topology"]
            class_name = get_path(topology, ("classRef", "name")) or topology.get("class")
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
                    f"Cluster {meta(cluster, 'name')}: no machine type variable found ({names.source}); "
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
    # Rolling back to the image the original template boots (``--image ubuntu-24.04`` after a
    # rollout): the original, under the name without an image suffix, is reused as it is.
    original = _without_image_suffix(old)
    if original is not None:
        found = [t for t in templates if t.name == original and t.namespace == old.namespace]
        if found and found[0].image_name == image.name and found[0].server_type == stype:
            return original, found[0]
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


def _without_image_suffix(template: TemplateSite) -> str | None:
    """The name ``template``'s name was derived from, when it ends in its image's suffix."""
    if not template.image_name:
        return None
    suffix = "-" + dns_name(template.image_name)
    if template.name.endswith(suffix) and len(template.name) > len(suffix):
        return template.name[: -len(suffix)]
    return None


def _copy_template(old: TemplateSite, image: ImageRef, role: Role, server_type: str | None, name: str) -> NewTemplate:
    spec = get_path(old.doc, ("spec", "template", "spec"))
    if not isinstance(spec, CommentedMap) or "imageName" not in spec:
        hint = " (it boots from imageURL)" if isinstance(spec, dict) and "imageURL" in spec else ""
        raise ManifestError(
            f"{TEMPLATE_KIND} '{old.name}' ({old.source.path}) has no spec.template.spec.imageName{hint}"
        )
    stype = server_type or old.server_type
    if not stype:
        raise ManifestError(f"{TEMPLATE_KIND} '{old.name}' has no spec.template.spec.type; pass --server-type")
    edits = [(old.doc["metadata"], "name", name), (spec, "imageName", image.name)]
    if server_type and "type" in spec and old.server_type != server_type:
        edits.append((spec, "type", server_type))
    text = copy_document(old.source, old.doc, edits)
    start, end = doc_span(old.source, old.doc)
    lines = old.source.lines[start:end]
    data = YAML(typ="safe").load("".join(lines))
    data["metadata"]["name"] = name
    data["spec"]["template"]["spec"]["imageName"] = image.name
    data["spec"]["template"]["spec"]["type"] = stype
    return NewTemplate(name, role, stype, text, data, old)
