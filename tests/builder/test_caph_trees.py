"""``capi-image manifests`` on CAPH's own kustomize trees (read in place from
../shared/reference/caph/upstream, copied to a temporary folder per test because the in-place
mode writes): every flavor of both template versions and every e2e flavor that renders without
secrets, rendered with the real ``kubectl kustomize`` before and after the rollout.

For each: the in-place edit of the tree and the ``--kustomize`` component each roll every
HCloudMachineTemplate-backed control plane and worker pool to the new image; the new templates
are the old ones (after the flavor's patches: CAPH's placementGroupName) with only name and
image changed; a re-run changes nothing; A -> B -> A comes back to A's templates; every template
validates against CAPH's CRD; the old templates stay in the output; prune's in-use scan of the
rendered output spares both images.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pytest

from builder.ops.inuse import scan

from ..rolloutkit import TREES, Built, assert_valid_templates, dump, manifests, pools, render, templates, upstream

TEMPLATE_FLAVORS = [
    "hcloud",
    "hcloud-network",
    "hetzner-baremetal-control-planes",
    "hetzner-baremetal-control-planes-remediation",
    "hetzner-hcloud-control-planes",
]
# the e2e flavors that render without secrets (the bare metal ones need a secrets file CAPH's
# e2e run writes)
E2E_FLAVORS = [
    "cluster-template",
    "cluster-template-hcloud-feature-load-balancer-extra-services",
    "cluster-template-hcloud-feature-loadbalancer-off",
    "cluster-template-hcloud-feature-placement-groups",
    "cluster-template-k8s-upgrade",
    "cluster-template-k8s-upgrade-kcp-scale-in",
    "cluster-template-kcp-remediation",
    "cluster-template-md-remediation",
    "cluster-template-network",
    "cluster-template-node-drain",
]
FLAVORS = [(t, f) for t in ("v1beta1", "v1.0.9") for f in TEMPLATE_FLAVORS] + [("e2e", f) for f in E2E_FLAVORS]


def test_the_flavor_lists_are_the_trees_flavors() -> None:
    """A flavor CAPH adds is noticed here, not silently left out of the tests below."""
    root = upstream()
    for tree, listed in (("v1beta1", TEMPLATE_FLAVORS), ("v1.0.9", TEMPLATE_FLAVORS)):
        assert sorted(p.parent.name for p in (root / TREES[tree]).glob("*/kustomization.yaml")) == listed
    e2e = sorted(p.parent.name for p in (root / TREES["e2e"]).glob("cluster-template*/kustomization.yaml"))
    assert set(E2E_FLAVORS) <= set(e2e)
    assert all("baremetal" in f for f in set(e2e) - set(E2E_FLAVORS))


def assert_rolled(before: list[Any], after: list[Any], image: str) -> dict[str, str]:
    """Every pool of ``before`` boots ``image`` in ``after`` from a template that is its old
    one with only the name and imageName changed; every old template is still there, unchanged;
    every template validates against the CRD. Returns the pools' new template names."""
    old_pools, new_pools = pools(before), pools(after)
    assert old_pools, "the flavor has no HCloudMachineTemplate-backed pool"
    assert new_pools.keys() == old_pools.keys()
    old_templates, new_templates = templates(before), templates(after)
    for pool, old_name in old_pools.items():
        new = new_templates[new_pools[pool]]
        expected = copy.deepcopy(old_templates[old_name])
        expected["metadata"]["name"] = new_pools[pool]
        expected["spec"]["template"]["spec"]["imageName"] = image
        assert new == expected, f"{pool}: {new} != {expected}"
    for name, old in old_templates.items():
        assert new_templates.get(name) == old, f"old template {name} changed or gone"
    text = "".join("---\n" + dump(d) for d in new_templates.values())
    assert assert_valid_templates(text) == len(new_templates)
    return new_pools


def tree_copy(tmp_path: Path, tree: str, flavor: str) -> Path:
    shutil.copytree(upstream(), tmp_path / "caph")
    return tmp_path / "caph" / TREES[tree] / flavor


def file_texts(root: Path) -> dict[str, str]:
    return {str(p): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def assert_spared_by_prune(rendered: list[Any], tmp_path: Path, *images: str) -> None:
    out = tmp_path / "rendered.yaml"
    out.write_text("".join("---\n" + dump(d) for d in rendered))
    refs = scan([out])
    for image in images:
        assert refs.find(image), f"prune's in-use scan misses {image}"


@pytest.mark.parametrize(("tree", "flavor"), FLAVORS)
def test_in_place_rollout_of_a_caph_flavor(built: Built, tmp_path: Path, tree: str, flavor: str) -> None:
    folder = tree_copy(tmp_path, tree, flavor)
    before = render(folder)
    a = ("--from", str(built.manifest), "--cluster", str(folder))
    r = manifests(built, *a)
    assert r.returncode == 0, r.stderr
    after_a = render(folder)
    names_a = assert_rolled(before, after_a, built.name)
    files = file_texts(tmp_path / "caph")
    again = manifests(built, *a)
    assert again.returncode == 0, again.stderr
    assert file_texts(tmp_path / "caph") == files, "a re-run changed files"
    r = manifests(built, "--from", str(built.other_manifest), "--cluster", str(folder))
    assert r.returncode == 0, r.stderr
    after_b = render(folder)
    assert_rolled(before, after_b, str(built.other["caph_image_name"]))
    assert set(templates(after_a)) <= set(templates(after_b)), "A's templates left the output"
    r = manifests(built, *a)
    assert r.returncode == 0, r.stderr
    after_aba = render(folder)
    assert pools(after_aba) == names_a, "A -> B -> A did not come back to A's templates"
    assert set(templates(after_aba)) == set(templates(after_b)), "A -> B -> A made new templates"
    assert_spared_by_prune(after_aba, tmp_path, built.name, str(built.other["caph_image_name"]))


@pytest.mark.parametrize(("tree", "flavor"), FLAVORS)
def test_kustomize_rollout_of_a_caph_flavor(built: Built, tmp_path: Path, tree: str, flavor: str) -> None:
    folder = tree_copy(tmp_path, tree, flavor)
    component, overlay = tmp_path / "rollout", tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        f"resources:\n- {Path('..', folder.relative_to(tmp_path))}\ncomponents:\n- ../rollout\n"
    )
    before = render(folder)
    sources = file_texts(tmp_path / "caph")
    a = ("--from", str(built.manifest), "--cluster", str(folder), "--kustomize", str(component))
    r = manifests(built, *a)
    assert r.returncode == 0, r.stderr
    assert file_texts(tmp_path / "caph") == sources, "--kustomize changed the tree"
    after_a = render(overlay)
    names_a = assert_rolled(before, after_a, built.name)
    written = file_texts(component)
    again = manifests(built, *a)
    assert again.returncode == 0, again.stderr
    assert file_texts(component) == written, "a re-run changed the component"
    r = manifests(built, "--from", str(built.other_manifest), "--cluster", str(folder), "--kustomize", str(component))
    assert r.returncode == 0, r.stderr
    after_b = render(overlay)
    assert_rolled(before, after_b, str(built.other["caph_image_name"]))
    assert {n: t for n, t in templates(after_a).items()} == {
        n: t for n, t in templates(after_b).items() if n in templates(after_a)
    }, "A's templates left the output or changed (a carried patch lost)"
    r = manifests(built, *a)
    assert r.returncode == 0, r.stderr
    after_aba = render(overlay)
    assert pools(after_aba) == names_a
    assert templates(after_aba) == templates(after_b)
    assert_spared_by_prune(after_aba, tmp_path, built.name, str(built.other["caph_image_name"]))
