"""``capi-image manifests``: snapshots from real localcloud builds lifted into Cluster API
manifests; existing v1beta1/v1beta2 cluster files edited round-trip; the kustomize Component
applied by kubectl kustomize (when installed) and by a JSON6902 check in Python."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonpatch
import pytest

from builder.cloud import make_client
from builder.ops.manifests import ManifestError, new_template_name

from ..buildkit import run_cli
from ..rolloutkit import Built, assert_valid_templates, by_kind_name, docs, manifests, real_kubectl, safe

CLUSTERS = Path(__file__).parents[1] / "data" / "clusters"


def test_templates_from_a_build_manifest(built: Built) -> None:
    r = manifests(built, "--from", str(built.manifest), "--cluster-name", "prod")
    assert r.returncode == 0, r.stderr
    templates = docs(r.stdout)
    assert [t["metadata"]["name"] for t in templates] == [
        f"prod-control-plane-{built.name}",
        f"prod-workers-{built.name}",
    ]
    for t in templates:
        assert t["apiVersion"] == "infrastructure.cluster.x-k8s.io/v1beta1"
        assert t["kind"] == "HCloudMachineTemplate"
        assert t["spec"]["template"]["spec"] == {"imageName": built.name, "type": "cpx22"}
    assert f"snapshot id: {built.snapshot_id}" in r.stderr
    assert f"HCLOUD_IMAGE={built.snapshot_id}" in r.stderr


def test_image_by_snapshot_id_and_role(built: Built) -> None:
    r = manifests(built, "--image", str(built.snapshot_id), "--role", "workers", "--server-type", "cpx32")
    assert r.returncode == 0, r.stderr
    (t,) = docs(r.stdout)
    assert t["spec"]["template"]["spec"] == {"imageName": built.name, "type": "cpx32"}


def _round_trip(built: Built, tmp_path: Path, fixture: str) -> tuple[str, str, dict[str, Any]]:
    path = tmp_path / fixture
    shutil.copy(CLUSTERS / fixture, path)
    before = path.read_text()
    r = manifests(built, "--from", str(built.manifest), "--cluster", str(path))
    assert r.returncode == 0, r.stderr
    return before, path.read_text(), json.loads(r.stdout)


@pytest.mark.parametrize(
    ("fixture", "refs"),
    [
        ("v1beta1.yaml", {"alpha-control-plane": 1, "alpha-md-0": 1}),
        ("v1beta2.yaml", {"beta-control-plane": 1, "beta-md-0": 2}),
    ],
)
def test_cluster_manifests_round_trip(built: Built, tmp_path: Path, fixture: str, refs: dict[str, int]) -> None:
    before, after, summary = _round_trip(built, tmp_path, fixture)
    assert assert_valid_templates(after) == len(refs) * 2  # the old ones and their copies
    new = {old: new_template_name(old, "ubuntu-24.04", built.name) for old in refs}
    assert {t["name"] for t in summary["templates"]} == set(new.values())
    assert len(summary["updated"]) == sum(refs.values())

    # Take the inserted template documents out again: what is left must be the original text
    # with only the ref names changed, byte for byte (comments, quotes, flow maps, order).
    inserted = [
        d for d in after.split("\n---\n") if any(f"name: {n}\n" in d for n in new.values()) and "imageName" in d
    ]
    assert len(inserted) == len(new)
    rest = after
    for block in inserted:
        rest = rest.replace("\n---\n" + block, "", 1)
    # (a block at the very end takes the file's last newline with it)
    assert rest.rstrip("\n") + "\n" == _replace_refs(before, new)
    assert after.endswith("\n")
    for line in before.splitlines():
        if line.lstrip().startswith("#"):
            assert line in after

    # The new templates copy the old ones, with the new name and image only.
    old_docs, new_docs = by_kind_name(docs(before)), by_kind_name(docs(after))
    for old, repl in new.items():
        copy = new_docs[("HCloudMachineTemplate", repl)]
        orig = old_docs[("HCloudMachineTemplate", old)]
        assert copy["spec"]["template"]["spec"] == {**orig["spec"]["template"]["spec"], "imageName": built.name}
        assert copy["metadata"] == {**orig["metadata"], "name": repl}
        assert ("HCloudMachineTemplate", old) in new_docs  # the old one stays until the rollout is done
    # The copy's comment about the old image is gone, comments elsewhere in it stay.
    assert "preKubeadmCommands install the rest" not in "".join(inserted)


def _replace_refs(text: str, names: dict[str, str]) -> str:
    """The template names replaced in infrastructureRef lines only, by hand."""
    out, in_ref = [], False
    for line in text.splitlines(keepends=True):
        if "infrastructureRef: {" in line:
            for old, new in names.items():
                line = line.replace(f"name: {old}}}", f"name: {new}}}")
        elif "infrastructureRef:" in line:
            in_ref = True
        elif in_ref and line.strip().startswith("name:"):
            in_ref = False
            old = line.split("name:", 1)[1].split("#")[0].strip().strip("'\"")
            line = line.replace(old, names.get(old, old), 1)
        out.append(line)
    return "".join(out)


def test_rerun_is_a_no_op_and_dry_run_writes_nothing(built: Built, tmp_path: Path) -> None:
    _, after, _ = _round_trip(built, tmp_path, "v1beta2.yaml")
    path = tmp_path / "v1beta2.yaml"
    r = manifests(built, "--from", str(built.manifest), "--cluster", str(path))
    assert r.returncode == 0, r.stderr
    assert path.read_text() == after
    assert "already uses" in r.stderr
    shutil.copy(CLUSTERS / "v1beta1.yaml", path)
    r = manifests(built, "--from", str(built.manifest), "--cluster", str(path), "--dry-run")
    assert r.returncode == 0, r.stderr
    assert path.read_text() == (CLUSTERS / "v1beta1.yaml").read_text()
    assert f'+      name: "alpha-control-plane-{built.name}"' in r.stdout


def _apply_component(base: list[Any], component: Path) -> list[Any]:
    """What kustomize does with our Component, in Python: add its resources, apply each
    JSON6902 patch to the one object its target selects."""
    kz = safe.load((component / "kustomization.yaml").read_text())
    assert kz["kind"] == "Component"
    out = [json.loads(json.dumps(d)) for d in base]
    for res in kz["resources"]:
        out += docs((component / res).read_text())
    for p in kz["patches"]:
        t = p["target"]
        hits = [
            i
            for i, d in enumerate(out)
            if d["kind"] == t["kind"]
            and d["metadata"]["name"] == t["name"]
            and d["apiVersion"] == f"{t['group']}/{t['version']}"
            and d["metadata"].get("namespace") == t.get("namespace")
        ]
        assert len(hits) == 1, t
        out[hits[0]] = jsonpatch.apply_patch(out[hits[0]], safe.load(p["patch"]))
    return out


@pytest.mark.parametrize("fixture", ["v1beta1.yaml", "v1beta2.yaml"])
def test_kustomize_component_applies(built: Built, tmp_path: Path, fixture: str) -> None:
    base = tmp_path / "base"
    base.mkdir()
    shutil.copy(CLUSTERS / fixture, base / fixture)
    (base / "kustomization.yaml").write_text(f"resources:\n- {fixture}\n")
    r = manifests(
        built, "--from", str(built.manifest), "--cluster", str(base / fixture), "--kustomize", str(tmp_path / "rollout")
    )
    assert r.returncode == 0, r.stderr
    assert (base / fixture).read_text() == (CLUSTERS / fixture).read_text()  # inputs untouched

    # The expected result: the same files edited in place.
    _, edited, _ = _round_trip(built, tmp_path, fixture)
    want = by_kind_name(docs(edited))

    got = by_kind_name(_apply_component(docs((CLUSTERS / fixture).read_text()), tmp_path / "rollout"))
    assert got == want

    kubectl = real_kubectl()
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text("resources:\n- ../base\ncomponents:\n- ../rollout\n")
    out = subprocess.run([kubectl, "kustomize", str(overlay)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert by_kind_name(docs(out.stdout)) == want
    # A base that drifted from what the patch expects fails instead of being re-pointed.
    drifted = re.sub(r'-control-plane("?)   #', r"-control-plane-old\1   #", (CLUSTERS / fixture).read_text())
    assert drifted != (CLUSTERS / fixture).read_text()
    (base / fixture).write_text(drifted)
    out = subprocess.run([kubectl, "kustomize", str(overlay)], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0


def test_ambiguous_and_missing_image_names_are_rejected(built: Built, tmp_path: Path) -> None:
    path = tmp_path / "v1beta2.yaml"
    shutil.copy(CLUSTERS / "v1beta2.yaml", path)
    before = path.read_text()

    r = manifests(built, "--image", "k8s-v1.31.4-nowhere", "--cluster", str(path))
    assert r.returncode == 2
    assert "'k8s-v1.31.4-nowhere' resolves to no image in this project" in r.stderr
    assert "ImageNotFound" in r.stderr

    r = manifests(built, "--from", str(built.manifest), "--cluster", str(path), "--server-type", "cax11")
    assert r.returncode == 2
    assert "resolves to no image for arm (server type cax11)" in r.stderr

    client, _ = make_client("t", built.lc.endpoint)
    other = client.images.get_by_id(built.other["snapshot_id"])
    client.images.update(other, labels={**(other.labels or {}), "caph-image-name": built.name})
    try:
        r = manifests(built, "--from", str(built.manifest), "--cluster", str(path))
        assert r.returncode == 2
        assert f"imageName '{built.name}' is ambiguous for x86" in r.stderr
        assert str(built.other["snapshot_id"]) in r.stderr
    finally:
        client.images.update(other, labels={**(other.labels or {}), "caph-image-name": built.other["caph_image_name"]})
    assert path.read_text() == before


def test_input_errors(built: Built, tmp_path: Path) -> None:
    failed = tmp_path / "failed.json"
    failed.write_text(json.dumps({"result": "failure", "error": "boom"}))
    r = manifests(built, "--from", str(failed))
    assert r.returncode == 2
    assert "records no published image" in r.stderr

    lonely = tmp_path / "md.yaml"
    lonely.write_text((CLUSTERS / "v1beta2.yaml").read_text().split("---\napiVersion: infrastructure", 1)[0])
    r = manifests(built, "--from", str(built.manifest), "--cluster", str(lonely))
    assert r.returncode == 2
    assert "references HCloudMachineTemplate 'beta-control-plane', which is in none of the given files" in r.stderr

    r = manifests(built, "--from", str(built.manifest), "--image", "x")
    assert r.returncode == 2
    assert "exactly one of --from" in r.stderr


def test_template_names() -> None:
    assert new_template_name("md-0", "ubuntu-24.04", "K8s_v1.31.4") == "md-0-k8s-v1.31.4"
    assert new_template_name("md-0-k8s-v1.31.4", "k8s-v1.31.4", "k8s-v1.32.0") == "md-0-k8s-v1.32.0"
    assert len(new_template_name("x" * 250, None, "y" * 20)) <= 253
    assert issubclass(ManifestError, ValueError)


def test_summary_of_a_build_manifest(built: Built, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "builder.cli", "summary", str(built.manifest), "--title", "Images for p"]
    r = run_cli(cmd, built.config, built.lc.endpoint)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("## Images for p\n")
    assert f"| ubuntu-2404/x86/k8s-v1.31.4 | published | `{built.name}` | {built.snapshot_id} |" in r.stdout
    assert f"      imageName: {built.name}\n      type: cpx22\n" in r.stdout
    assert f"`HCLOUD_IMAGE={built.snapshot_id}`" in r.stdout
    junk = tmp_path / "junk.json"
    junk.write_text("{}")
    r = run_cli([*cmd[:4], str(junk)], built.config, built.lc.endpoint)
    assert r.returncode == 2
    assert "neither a build manifest nor a matrix summary" in r.stderr


def test_rollback_reuses_the_template_that_is_already_right(built: Built, tmp_path: Path) -> None:
    """A -> B -> A: the third rollout points the refs back at A's templates (templates are
    immutable, and A's are exactly right) instead of refusing or adding a third set."""
    other = tmp_path / "other.json"
    other.write_text(json.dumps(built.other))
    path = tmp_path / "v1beta2.yaml"
    shutil.copy(CLUSTERS / "v1beta2.yaml", path)
    for manifest in (built.manifest, other):
        r = manifests(built, "--from", str(manifest), "--cluster", str(path))
        assert r.returncode == 0, r.stderr
    after_b = path.read_text()
    r = manifests(built, "--from", str(built.manifest), "--cluster", str(path))
    assert r.returncode == 0, r.stderr
    assert "reusing beta-control-plane-" in r.stderr
    rolled_back = path.read_text()
    templates = [d for d in docs(rolled_back) if d["kind"] == "HCloudMachineTemplate"]
    assert len(templates) == len([d for d in docs(after_b) if d["kind"] == "HCloudMachineTemplate"])
    kcp = next(d for d in docs(rolled_back) if d["kind"] == "KubeadmControlPlane")
    assert kcp["spec"]["machineTemplate"]["spec"]["infrastructureRef"]["name"] == new_template_name(
        "beta-control-plane", "ubuntu-24.04", built.name
    )
    # and once more: a no-op
    r = manifests(built, "--from", str(built.manifest), "--cluster", str(path))
    assert r.returncode == 0 and path.read_text() == rolled_back


def test_a_new_server_type_for_the_same_image_gets_its_own_template(built: Built, tmp_path: Path) -> None:
    path = tmp_path / "v1beta2.yaml"
    shutil.copy(CLUSTERS / "v1beta2.yaml", path)
    assert manifests(built, "--from", str(built.manifest), "--cluster", str(path)).returncode == 0
    r = manifests(built, "--from", str(built.manifest), "--cluster", str(path), "--server-type", "cpx42")
    assert r.returncode == 0, r.stderr
    names = [d["metadata"]["name"] for d in docs(path.read_text()) if d["kind"] == "HCloudMachineTemplate"]
    for old in ("beta-control-plane", "beta-md-0"):
        assert f"{new_template_name(old, 'ubuntu-24.04', built.name)}-cpx42" in names


def test_template_names_are_dns_1123() -> None:
    assert new_template_name("md-0", None, "k8s_.v1") == "md-0-k8s.v1"
    assert new_template_name("md-0", None, "-x..y-") == "md-0-x.y"
    assert all(len(label) <= 63 for label in new_template_name("md", None, "a" * 100 + ".b").split("."))


@pytest.mark.parametrize(
    "fixture", ["flow-style.yaml", "clusterctl-template.yaml", "folded-scalar.yaml", "v1beta1.yaml"]
)
@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["LF", "CRLF"])
def test_odd_shapes_are_edited_in_place(built: Built, tmp_path: Path, fixture: str, newline: str) -> None:
    """Flow style, clusterctl ${VAR}s (not resolved, the architecture check skipped with a
    note), a folded scalar, CRLF line ends: the file keeps its shape, only the refs change and
    the new templates follow the old ones; a re-run is a no-op; every template validates."""
    path = tmp_path / fixture
    path.write_bytes((CLUSTERS / fixture).read_text().replace("\n", newline).encode())
    before = path.read_bytes().decode()
    r = manifests(built, "--from", str(built.manifest), "--cluster", str(path))
    assert r.returncode == 0, r.stderr
    after = path.read_bytes().decode()
    if newline == "\r\n":
        assert after.count("\r\n") == after.count("\n"), "line ends changed"
    old_docs, new_docs = docs(before), docs(after)
    summary = json.loads(r.stdout)
    assert summary["snapshot_id"] == built.snapshot_id and summary["HCLOUD_IMAGE"] == str(built.snapshot_id)
    added = [d for d in new_docs if d not in old_docs]
    assert {d["metadata"]["name"] for d in added if d["kind"] == "HCloudMachineTemplate"} == {
        t["name"] for t in summary["templates"]
    }
    # besides the new templates, only refs changed
    unchanged = [d for d in new_docs if d["kind"] != "HCloudMachineTemplate" or d in old_docs]
    assert len(unchanged) == len(old_docs)
    if "${" in before:
        assert "clusterctl variable: the architecture check is skipped" in r.stderr
        assert "${CLUSTER_NAME}-control-plane-" in after and "${HCLOUD_CONTROL_PLANE_MACHINE_TYPE}" in after
    assert assert_valid_templates(after) == len([d for d in new_docs if d["kind"] == "HCloudMachineTemplate"])
    again = manifests(built, "--from", str(built.manifest), "--cluster", str(path))
    assert again.returncode == 0, again.stderr
    assert path.read_bytes().decode() == after
    assert json.loads(again.stdout)["snapshot_id"] == built.snapshot_id  # the no-op still resolves


def test_a_no_op_re_run_with_image_name_still_resolves(built: Built, tmp_path: Path) -> None:
    path = tmp_path / "v1beta2.yaml"
    shutil.copy(CLUSTERS / "v1beta2.yaml", path)
    assert manifests(built, "--image", built.name, "--cluster", str(path)).returncode == 0
    r = manifests(built, "--image", built.name, "--cluster", str(path))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["snapshot_id"] == built.snapshot_id and out["HCLOUD_IMAGE"] == str(built.snapshot_id)


def test_fresh_templates_validate_against_the_crd(built: Built) -> None:
    r = manifests(built, "--from", str(built.manifest))
    assert r.returncode == 0, r.stderr
    assert assert_valid_templates(r.stdout) == 2


def _values(doc: Any) -> dict[str, Any]:
    topology = doc["spec"]["topology"]
    out = {f"variables/{v['name']}": v["value"] for v in topology.get("variables", [])}
    for md in topology.get("workers", {}).get("machineDeployments", []):
        for o in md.get("variables", {}).get("overrides", []):
            out[f"{md['name']}/{o['name']}"] = o["value"]
    return out


def test_topology_cluster_rolls_by_variables(built: Built, tmp_path: Path) -> None:
    """A Cluster with spec.topology: the image variables (cluster level and a machine
    deployment's override) become the new image, the control plane's — left at its default —
    is added; nothing else changes, comments stay, a re-run is a no-op, the kustomize Component
    gives the same Cluster."""
    path = tmp_path / "topology.yaml"
    shutil.copy(CLUSTERS / "topology.yaml", path)
    before = path.read_text()
    r = manifests(built, "--from", str(built.manifest), "--cluster", str(path))
    assert r.returncode == 0, r.stderr
    after = path.read_text()
    old, new = _values(docs(before)[0]), _values(docs(after)[0])
    assert new == {
        **old,
        "variables/hcloudWorkerMachineImageName": built.name,
        "variables/hcloudControlPlaneMachineImageName": built.name,
        "md-big/hcloudWorkerMachineImageName": built.name,
    }
    strip = lambda d: {k: v for k, v in d["spec"].items() if k != "topology"}  # noqa: E731
    assert strip(docs(after)[0]) == strip(docs(before)[0])
    for line in before.splitlines():
        if line.lstrip().startswith("#"):
            assert line in after
    summary = json.loads(r.stdout)
    assert summary["templates"] == [] and len(summary["updated"]) == 3
    assert summary["snapshot_id"] == built.snapshot_id
    again = manifests(built, "--from", str(built.manifest), "--cluster", str(path))
    assert again.returncode == 0 and path.read_text() == after
    # kustomize: the Component turns the original into the same Cluster
    base = tmp_path / "base"
    base.mkdir()
    (base / "topology.yaml").write_text(before)
    (base / "kustomization.yaml").write_text("resources:\n- topology.yaml\n")
    r = manifests(built, "--from", str(built.manifest), "--cluster", str(base / "topology.yaml"),
                  "--kustomize", str(tmp_path / "rollout"))  # fmt: skip
    assert r.returncode == 0, r.stderr
    got = _apply_component(docs(before), tmp_path / "rollout")
    assert _values(got[0]) == new


def test_topology_variable_names_come_from_the_cluster_class(built: Built, tmp_path: Path) -> None:
    path = tmp_path / "team.yaml"
    shutil.copy(CLUSTERS / "topology-custom-class.yaml", path)
    before = path.read_text()
    r = manifests(built, "--from", str(built.manifest), "--cluster", str(path), "--role", "workers")
    assert r.returncode == 0, r.stderr
    cluster = docs(path.read_text())[1]
    assert _values(cluster) == {"variables/nodeImage": built.name}  # added explicitly; cpImage untouched (--role)
    assert docs(path.read_text())[0] == docs(before)[0]  # the class is not edited


def test_a_bare_metal_machine_deployment_is_skipped_with_a_note(built: Built, tmp_path: Path) -> None:
    path = tmp_path / "mixed.yaml"
    bare = (
        "---\napiVersion: cluster.x-k8s.io/v1beta2\nkind: MachineDeployment\nmetadata:\n  name: beta-bm\n"
        "spec:\n  template:\n    spec:\n      infrastructureRef:\n        apiGroup: infrastructure.cluster.x-k8s.io\n"
        "        kind: HetznerBareMetalMachineTemplate\n        name: beta-bm\n"
    )
    path.write_text((CLUSTERS / "v1beta2.yaml").read_text() + bare)
    r = manifests(built, "--from", str(built.manifest), "--cluster", str(path))
    assert r.returncode == 0, r.stderr
    assert "MachineDeployment beta-bm" in r.stderr and "references HetznerBareMetalMachineTemplate" in r.stderr
    assert bare in path.read_text()


def test_cluster_class_template_rotation(built: Built, tmp_path: Path) -> None:
    """The other ClusterClass style: templates carry the image, so the class's templateRefs are
    repointed at new templates (copied right after the old ones); re-running is a no-op."""
    path = tmp_path / "rotation.yaml"
    shutil.copy(CLUSTERS / "clusterclass-rotation.yaml", path)
    r = manifests(built, "--from", str(built.manifest), "--cluster", str(path))
    assert r.returncode == 0, r.stderr
    after = docs(path.read_text())
    cc = after[0]
    cp_ref = cc["spec"]["controlPlane"]["machineInfrastructure"]["templateRef"]["name"]
    md_ref = cc["spec"]["workers"]["machineDeployments"][0]["infrastructure"]["templateRef"]["name"]
    assert cp_ref == new_template_name("rotated-cp", "ubuntu-24.04", built.name)
    assert md_ref == new_template_name("rotated-workers", "ubuntu-24.04", built.name)
    templates = {d["metadata"]["name"]: d for d in after if d["kind"] == "HCloudMachineTemplate"}
    assert templates[cp_ref]["spec"]["template"]["spec"] == {"imageName": built.name, "type": "cpx32"}
    assert {"rotated-cp", "rotated-workers"} <= set(templates)  # the old ones stay
    assert "# the control plane's machines" in path.read_text()
    assert assert_valid_templates(path.read_text()) == 4
    text = path.read_text()
    assert manifests(built, "--from", str(built.manifest), "--cluster", str(path)).returncode == 0
    assert path.read_text() == text


def test_a_class_that_patches_the_image_is_not_rotated(built: Built, tmp_path: Path) -> None:
    path = tmp_path / "team.yaml"
    text = (
        (CLUSTERS / "topology-custom-class.yaml")
        .read_text()
        .replace(
            "  patches:\n",
            "  controlPlane:\n    machineInfrastructure:\n      templateRef:\n        apiVersion: "
            "infrastructure.cluster.x-k8s.io/v1beta1\n        kind: HCloudMachineTemplate\n        name: team-cp\n  patches:\n",
        )
    )
    path.write_text(text)
    r = manifests(built, "--from", str(built.manifest), "--cluster", str(path), "--role", "control-plane")
    assert r.returncode == 0, r.stderr
    assert "imageName comes from variable cpImage" in r.stderr
    assert _values(docs(path.read_text())[1]) == {"variables/cpImage": built.name}


def test_kustomize_patches_match_clusterctl_template_names(built: Built, tmp_path: Path) -> None:
    """clusterctl templates name objects ``${CLUSTER_NAME}-md-0``; kustomize reads a patch
    target's name as a regular expression (``$`` an anchor). Before: the patches matched nothing,
    ``kubectl kustomize`` exited 0 and the refs stayed old."""
    kubectl = real_kubectl()
    base = tmp_path / "base"
    base.mkdir()
    template = (CLUSTERS / "v1beta2.yaml").read_text().replace("beta-", "${CLUSTER_NAME}-")
    (base / "cluster.yaml").write_text(template)
    (base / "kustomization.yaml").write_text("resources:\n- cluster.yaml\n")
    r = manifests(
        built,
        "--from",
        str(built.manifest),
        "--cluster",
        str(base / "cluster.yaml"),
        "--kustomize",
        str(tmp_path / "rollout"),
    )
    assert r.returncode == 0, r.stderr
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text("resources:\n- ../base\ncomponents:\n- ../rollout\n")
    out = subprocess.run([kubectl, "kustomize", str(overlay)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    rendered = docs(out.stdout)
    new_templates = {d["metadata"]["name"] for d in rendered if d["kind"] == "HCloudMachineTemplate"} - {
        d["metadata"]["name"] for d in docs(template) if d["kind"] == "HCloudMachineTemplate"
    }
    assert new_templates, "no new templates rendered"
    refs = [
        d["spec"]["machineTemplate"]["spec"]["infrastructureRef"]["name"]
        if d["kind"] == "KubeadmControlPlane"
        else d["spec"]["template"]["spec"]["infrastructureRef"]["name"]
        for d in rendered
        if d["kind"] in ("KubeadmControlPlane", "MachineDeployment")
    ]
    assert refs and all(ref in new_templates for ref in refs), refs


def test_rerunning_a_rollout_into_a_component_inside_the_cluster_folder_keeps_it_whole(
    built: Built, tmp_path: Path
) -> None:
    """docs/rollout.md's layout: the component folder inside the --cluster folder. Before: run 2
    read the component's own templates as cluster files, "reused" them and wrote the component's
    hcloudmachinetemplates.yaml empty while its patches still pointed at them."""
    cluster = tmp_path / "cluster"
    cluster.mkdir()
    shutil.copy(CLUSTERS / "v1beta2.yaml", cluster / "v1beta2.yaml")
    (cluster / "kustomization.yaml").write_text("resources:\n- v1beta2.yaml\ncomponents:\n- rollout\n")
    args = ("--from", str(built.manifest), "--cluster", str(cluster), "--kustomize", str(cluster / "rollout"))
    first = manifests(built, *args)
    assert first.returncode == 0, first.stderr
    component = {p.name: p.read_text() for p in (cluster / "rollout").iterdir()}
    second = manifests(built, *args)
    assert second.returncode == 0, second.stderr
    assert {p.name: p.read_text() for p in (cluster / "rollout").iterdir()} == component
    assert "kind: HCloudMachineTemplate" in component["hcloudmachinetemplates.yaml"]


def test_a_second_rollout_keeps_the_first_ones_templates() -> None:
    """Image A, then B, through one component: A's templates stay in the output (machines still
    use them; a GitOps tool would prune what vanishes). Before: only B's were written."""
    from builder.ops.manifests import keep_earlier_templates

    def template(name: str, image: str) -> str:
        return (
            "---\napiVersion: infrastructure.cluster.x-k8s.io/v1beta1\nkind: HCloudMachineTemplate\n"
            f"metadata:\n  name: {name}\nspec:\n  template:\n    spec:\n      imageName: {image}\n"
        )

    earlier = template("c-md-0-a", "img-a") + template("c-control-plane-a", "img-a")
    new = template("c-md-0-b", "img-b")
    merged = [d["metadata"]["name"] for d in docs(keep_earlier_templates(earlier, new))]
    assert merged == ["c-md-0-a", "c-control-plane-a", "c-md-0-b"]
    again = [d["metadata"]["name"] for d in docs(keep_earlier_templates(new, new))]
    assert again == ["c-md-0-b"]  # the same rollout twice: no duplicate


def test_a_cluster_of_a_rotating_class_gets_no_image_variables(built: Built, tmp_path: Path) -> None:
    """A Cluster whose ClusterClass carries the image in its templates (no imageName patch, no
    image variable declared). Before: the tool added hcloudControlPlaneMachineImageName and
    hcloudWorkerMachineImageName to the Cluster, which CAPI refuses for a class that lacks them."""
    path = tmp_path / "rotation.yaml"
    cluster = (
        "---\napiVersion: cluster.x-k8s.io/v1beta2\nkind: Cluster\nmetadata:\n  name: c1\n  namespace: clusters\n"
        "spec:\n  topology:\n    classRef:\n      name: rotated\n    version: v1.31.4\n"
        "    workers:\n      machineDeployments:\n      - class: workers\n        name: md-0\n"
    )
    path.write_text((CLUSTERS / "clusterclass-rotation.yaml").read_text() + cluster)
    r = manifests(built, "--from", str(built.manifest), "--cluster", str(path))
    assert r.returncode == 0, r.stderr
    [c1] = [d for d in docs(path.read_text()) if d["kind"] == "Cluster"]
    assert "variables" not in c1["spec"]["topology"], c1["spec"]["topology"]


def test_a_file_ending_inside_a_block_scalar_without_a_newline_is_edited(built: Built, tmp_path: Path) -> None:
    """Before: "internal error" — a newline added after the last line would have changed the
    block scalar's value; the new template now goes before the last document instead."""
    path = tmp_path / "v1beta2.yaml"
    original = (CLUSTERS / "v1beta2.yaml").read_text().rstrip("\n")
    original += "\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  script: |\n    echo hi"
    # the last HCloudMachineTemplate moved to the end, so the template it gets follows the file's end
    path.write_text(original)
    r = manifests(built, "--from", str(built.manifest), "--cluster", str(path))
    assert r.returncode == 0, r.stderr
    edited = path.read_text()
    assert not edited.endswith("\n") and edited.endswith("echo hi")
    [cm] = [d for d in docs(edited) if d["kind"] == "ConfigMap"]
    assert cm["data"]["script"] == "echo hi"


def test_a_last_template_ending_inside_a_block_scalar_gets_its_new_template_before_it(
    built: Built, tmp_path: Path
) -> None:
    path = tmp_path / "v1beta2.yaml"
    text = (CLUSTERS / "v1beta2.yaml").read_text().rstrip("\n")
    head, sep, last = text.rpartition("---\n")
    last = last.replace("      imageName: ubuntu-24.04\n", "")
    path.write_text(head + sep + last + "\n      imageName: |-\n        ubuntu-24.04")
    r = manifests(built, "--from", str(built.manifest), "--cluster", str(path))
    assert r.returncode == 0, r.stderr
    edited = path.read_text()
    assert edited.endswith("        ubuntu-24.04")  # the last document untouched, still open
    names = [d["metadata"]["name"] for d in docs(edited) if d["kind"] == "HCloudMachineTemplate"]
    assert names[-1] == "beta-md-0" and names[-2] != "beta-md-0", names
    assert assert_valid_templates(edited) == len(names)


def test_a_control_plane_of_another_kind_is_named_not_skipped_silently(built: Built, tmp_path: Path) -> None:
    """A TalosControlPlane points at an HCloudMachineTemplate through spec.infrastructureTemplate.
    Before: only the workers rolled, exit 0, nothing said."""
    path = tmp_path / "talos.yaml"
    talos = (
        "---\napiVersion: controlplane.cluster.x-k8s.io/v1alpha3\nkind: TalosControlPlane\n"
        "metadata:\n  name: beta-talos\nspec:\n  infrastructureTemplate:\n"
        "    apiVersion: infrastructure.cluster.x-k8s.io/v1beta1\n    kind: HCloudMachineTemplate\n"
        "    name: beta-control-plane\n"
    )
    path.write_text((CLUSTERS / "v1beta2.yaml").read_text() + talos)
    r = manifests(built, "--from", str(built.manifest), "--cluster", str(path))
    assert r.returncode == 0, r.stderr
    notes = json.loads(r.stdout)["notes"]
    assert any("TalosControlPlane beta-talos" in n and "spec.infrastructureTemplate" in n for n in notes), notes
    assert "TalosControlPlane beta-talos" in r.stderr
