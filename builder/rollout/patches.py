"""Kustomize patches that target a rotated template, carried over to the new template's name.

CAPH's flavors add ``placementGroupName`` to ``${CLUSTER_NAME}-control-plane`` and
``${CLUSTER_NAME}-md-0`` with strategic-merge patches of that name. A new template under a new
name is patched by none of them, so its machines would boot outside their placement group. The
rollout adds to each such patch file a copy of the patch for the new name (a patch file may
hold several documents), with the image and type the new template boots where the patch sets
them (a patch setting ``imageName`` would otherwise put the old image back).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from .model import TEMPLATE_KIND
from .sources import Source, get_path, meta
from .splicing import copy_document


@dataclass
class PatchCopy:
    """A copy of a patch document (``source.docs[doc_index]``) for the new template ``name``."""

    source: Source
    doc_index: int
    name: str
    text: str  # one YAML document, starting with "---"
    data: dict[str, Any]

    @property
    def doc(self) -> Any:
        return self.source.docs[self.doc_index]


def template_patches(sources: list[Source], name: str, namespace: str | None) -> list[tuple[Source, int]]:
    """The patch documents that target the HCloudMachineTemplate ``name``."""
    return [
        (src, i)
        for src in sources
        if src.patch
        for i, doc in enumerate(src.docs)
        if isinstance(doc, dict)
        and doc.get("kind") == TEMPLATE_KIND
        and meta(doc, "name") == name
        and meta(doc, "namespace") in (namespace, None)
    ]


def carry(
    sources: list[Source], old: str, namespace: str | None, new: str, image: str, server_type: str | None
) -> list[PatchCopy]:
    """Copies, for template ``new``, of the patches that target template ``old``; none where the
    patch file already holds one for ``new`` (a re-run, a rollback). A type the patch sets is
    replaced only by an explicit ``--server-type``."""
    done = {id(src) for src, _ in template_patches(sources, new, namespace)}
    copies = []
    for src, i in template_patches(sources, old, namespace):
        if id(src) in done:
            continue
        doc = src.docs[i]
        edits: list[tuple[CommentedMap, str, str]] = [(doc["metadata"], "name", new)]
        spec = get_path(doc, ("spec", "template", "spec"))
        wanted = {"imageName": image} | ({"type": server_type} if server_type else {})
        if isinstance(spec, CommentedMap):
            edits += [(spec, key, value) for key, value in wanted.items() if key in spec and spec[key] != value]
        data = YAML(typ="safe").load(copy_document(src, doc, []))
        data["metadata"]["name"] = new
        data_spec = get_path(data, ("spec", "template", "spec"))
        if isinstance(data_spec, dict):
            data_spec.update({k: v for k, v in wanted.items() if k in data_spec})
        copies.append(PatchCopy(src, i, new, copy_document(src, doc, edits), data))
    return copies
