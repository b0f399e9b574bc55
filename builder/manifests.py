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

The pieces live in ``builder/rollout/``: ``model`` (the image, names), ``sources`` (files,
refs, templates), ``splicing`` (in-place scalar edits), ``plan`` (what changes: templates and
refs, ClusterClass rotation, topology variables via ``topology``), ``resolve`` (the API check),
``output`` (edited files, kustomize). This module is their public face.
"""

from __future__ import annotations

from .rollout.model import ROLES, ImageRef, ManifestError, Role, image_from_build_manifest, new_template_name
from .rollout.output import edited_files, kustomize_component
from .rollout.plan import Rollout, fresh_templates, plan_rollout
from .rollout.resolve import check_resolution
from .rollout.sources import load_sources

__all__ = [
    "ROLES",
    "ImageRef",
    "ManifestError",
    "Role",
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
