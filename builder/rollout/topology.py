"""ClusterClass (topology) clusters: the image is a variable, not a template.

In CAPH's ``quick-start`` ClusterClass the control plane boots
``hcloudControlPlaneMachineImageName`` and the workers ``hcloudWorkerMachineImageName``
(JSON patches on ``/spec/template/spec/imageName``); a Cluster sets them in
``spec.topology.variables`` and a machine deployment may override them in
``spec.topology.workers.machineDeployments[].variables.overrides``. Rolling a new image is
setting those values: the topology controller makes new templates and rolls the machines.

When a ClusterClass is among the inputs, the variable names (and the machine type variables
used for the architecture check) are read from its patches instead of assuming CAPH's; a
variable not written in the Cluster (left at its default) is added explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from .model import Role

IMAGE_PATH = "/spec/template/spec/imageName"
TYPE_PATH = "/spec/template/spec/type"
# CAPH's quick-start ClusterClass (templates/cluster-templates/v1beta1/cluster-class.yaml)
CAPH_VARIABLES: dict[Role, dict[str, str]] = {
    "control-plane": {"image": "hcloudControlPlaneMachineImageName", "type": "hcloudControlPlaneMachineType"},
    "workers": {"image": "hcloudWorkerMachineImageName", "type": "hcloudWorkerMachineType"},
}


@dataclass
class ClassVariables:
    """Per role: the image and machine type variable names, and their defaults."""

    names: dict[Role, dict[str, str]] = field(default_factory=lambda: {r: dict(v) for r, v in CAPH_VARIABLES.items()})
    defaults: dict[str, Any] = field(default_factory=dict)
    source: str = "CAPH's quick-start ClusterClass (assumed: no ClusterClass among the inputs)"


def _dig(node: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def class_variables(docs: list[tuple[str, Any]], class_name: str | None) -> ClassVariables:
    """Read the variable names from a ClusterClass among ``docs`` ((file, doc) pairs) named
    ``class_name``; CAPH's names when there is none."""
    for where, doc in docs:
        if _dig(doc, "kind") != "ClusterClass" or (class_name and _dig(doc, "metadata", "name") != class_name):
            continue
        out = ClassVariables(
            names={"control-plane": {}, "workers": {}},
            source=f"ClusterClass {_dig(doc, 'metadata', 'name')} ({where})",
        )
        declared = set()
        for var in _dig(doc, "spec", "variables") or []:
            declared.add(str(var.get("name")))
            default = _dig(var, "schema", "openAPIV3Schema", "default")
            if default is not None:
                out.defaults[str(var.get("name"))] = default
        for patch in _dig(doc, "spec", "patches") or []:
            for definition in patch.get("definitions") or []:
                match = _dig(definition, "selector", "matchResources") or {}
                if _dig(definition, "selector", "kind") not in (None, "HCloudMachineTemplate"):
                    continue
                roles: list[Role] = []
                if match.get("controlPlane"):
                    roles.append("control-plane")
                if match.get("machineDeploymentClass"):
                    roles.append("workers")
                for op in definition.get("jsonPatches") or []:
                    variable = _dig(op, "valueFrom", "variable")
                    if not variable:
                        continue
                    kind = {IMAGE_PATH: "image", TYPE_PATH: "type"}.get(str(op.get("path")))
                    if kind is None:
                        continue
                    # Only a variable the class declares: CAPI refuses a Cluster that sets one
                    # its class lacks (a class may rotate templates instead of patching imageName).
                    if str(variable) not in declared:
                        continue
                    for role in roles:
                        out.names[role].setdefault(kind, str(variable))
        return out
    return ClassVariables()


@dataclass
class VarSite:
    """Where a variable's value is (or is to be added) in one Cluster document."""

    doc_index: int
    path: tuple[str | int, ...]  # to the list holding the {name, value} entries
    name: str
    index: int | None  # the entry's position, None: to be added
    old: Any
    what: str  # for messages: "Cluster c1 variable X" / "... machineDeployment md-0 override X"

    @property
    def pointer(self) -> str:
        base = "/" + "/".join(str(p) for p in self.path)
        return f"{base}/{self.index}/value" if self.index is not None else f"{base}/-"


def topology_clusters(docs: list[Any]) -> list[tuple[int, CommentedMap]]:
    return [
        (i, d)
        for i, d in enumerate(docs)
        if _dig(d, "kind") == "Cluster" and isinstance(_dig(d, "spec", "topology"), dict)
    ]


def _entries(seq: Any) -> list[Any]:
    return list(seq) if isinstance(seq, CommentedSeq | list) else []


def variable_sites(doc_index: int, cluster: Any, roles: tuple[Role, ...], names: ClassVariables) -> list[VarSite]:
    """Each place the selected roles' image variable is set, or is to be added (cluster level)."""
    cname = _dig(cluster, "metadata", "name") or "?"
    topology = cluster["spec"]["topology"]
    sites: list[VarSite] = []
    for role in roles:
        var = names.names[role].get("image")
        if not var:
            continue
        entries = _entries(topology.get("variables"))
        found = next((i for i, e in enumerate(entries) if isinstance(e, dict) and e.get("name") == var), None)
        sites.append(
            VarSite(doc_index, ("spec", "topology", "variables"), var, found,
                    entries[found].get("value") if found is not None else names.defaults.get(var),
                    f"Cluster {cname} variable {var}")
        )  # fmt: skip
        if role != "workers":
            continue
        for m, md in enumerate(_entries(_dig(topology, "workers", "machineDeployments"))):
            overrides = _entries(_dig(md, "variables", "overrides"))
            for i, e in enumerate(overrides):
                if isinstance(e, dict) and e.get("name") == var:
                    path = ("spec", "topology", "workers", "machineDeployments", m, "variables", "overrides")
                    sites.append(VarSite(doc_index, path, var, i, e.get("value"),
                                         f"Cluster {cname} machineDeployment {md.get('name')} override {var}"))  # fmt: skip
    return sites


def machine_types(cluster: Any, roles: tuple[Role, ...], names: ClassVariables) -> dict[str, str]:
    """The machine types the selected roles use (cluster level and per override), for the
    architecture check: value -> where. Defaults from the ClusterClass count too."""
    topology = cluster["spec"]["topology"]
    out: dict[str, str] = {}
    for role in roles:
        var = names.names[role].get("type")
        if not var:
            continue
        values = {
            e.get("value") for e in _entries(topology.get("variables")) if isinstance(e, dict) and e.get("name") == var
        }
        if not values and var in names.defaults:
            values = {names.defaults[var]}
        for v in values:
            if isinstance(v, str):
                out[v] = f"variable {var}"
        if role == "workers":
            for md in _entries(_dig(topology, "workers", "machineDeployments")):
                for e in _entries(_dig(md, "variables", "overrides")):
                    if isinstance(e, dict) and e.get("name") == var and isinstance(e.get("value"), str):
                        out[e["value"]] = f"machineDeployment {md.get('name')} override {var}"
    return out


class TopologyEditError(ValueError):
    pass


def _block_end(lines: list[str], start: int, indent: int) -> int:
    """The line after a block that began at ``start``: the first later non-blank line indented
    at most ``indent``, or a document separator; trailing blank lines stay outside."""
    end = start + 1
    last = start
    while end < len(lines):
        row = lines[end]
        if row.strip():
            if row.startswith("---") or len(row) - len(row.lstrip()) <= indent:
                break
            last = end
        end += 1
    return last + 1


def insertion(lines: list[str], cluster: CommentedMap, var: str, rendered: str, newline: str) -> tuple[int, str]:
    """(line to insert before, text) adding ``- name: var / value: rendered`` to the Cluster's
    ``spec.topology.variables`` (creating the list if the Cluster has none)."""
    topology = cluster["spec"]["topology"]
    if topology.fa.flow_style():
        raise TopologyEditError("spec.topology is written in flow style; add the variable by hand")
    seq = topology.get("variables")
    if isinstance(seq, CommentedSeq) and len(seq):
        if seq.fa.flow_style():
            raise TopologyEditError("spec.topology.variables is written in flow style; add the variable by hand")
        line, col = seq.lc.item(len(seq) - 1)
        dash = col - 2
        at = _block_end(lines, line, dash)
        pad = " " * dash
        return at, f"{pad}- name: {var}{newline}{pad}  value: {rendered}{newline}"
    first_key = next(iter(topology))
    line, col = topology.lc.key(first_key)
    at = _block_end(lines, line, col - 1)
    pad = " " * col
    if isinstance(seq, CommentedSeq):  # "variables: []"
        raise TopologyEditError("spec.topology.variables is an empty flow list; add the variable by hand")
    return at, f"{pad}variables:{newline}{pad}- name: {var}{newline}{pad}  value: {rendered}{newline}"


def patched_image_roles(cluster_class: Any) -> dict[Role, str]:
    """The roles whose imageName a ClusterClass sets from a variable (role -> variable): for
    them, rotating the class's templates changes nothing — the variable wins."""
    out: dict[Role, str] = {}
    for patch in _dig(cluster_class, "spec", "patches") or []:
        for definition in patch.get("definitions") or []:
            match = _dig(definition, "selector", "matchResources") or {}
            for op in definition.get("jsonPatches") or []:
                variable = _dig(op, "valueFrom", "variable")
                if str(op.get("path")) != IMAGE_PATH or not variable:
                    continue
                if match.get("controlPlane"):
                    out.setdefault("control-plane", str(variable))
                if match.get("machineDeploymentClass"):
                    out.setdefault("workers", str(variable))
    return out
