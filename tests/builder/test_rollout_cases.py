"""``capi-image manifests`` cases from trying it as a user would on CAPH's files: a kustomize
source tree given as a folder, a user's kustomization in the --kustomize folder, messages that
name what is wrong, and a rollback to a stock image. Each failed before its fix."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..rolloutkit import CAPH_UPSTREAM, TREES, Built, docs, manifests, pools, render, templates, upstream


def caph_tree(tmp_path: Path) -> Path:
    upstream()
    shutil.copytree(CAPH_UPSTREAM / TREES["v1beta1"], tmp_path / "v1beta1")
    return tmp_path / "v1beta1"


def test_a_caph_tree_given_as_a_folder_rolls_and_keeps_its_patches(built: Built, tmp_path: Path) -> None:
    """Before: "defined more than once" (the placement-group patch read as a second template);
    editing the bases one by one rolled, but the new templates lost placementGroupName."""
    tree = caph_tree(tmp_path)
    r = manifests(built, "--from", str(built.manifest), "--cluster", str(tree))
    assert r.returncode == 0, r.stderr
    rendered = render(tree / "hcloud")
    new = templates(rendered)[pools(rendered)["KubeadmControlPlane ${CLUSTER_NAME}-control-plane"]]
    assert new["spec"]["template"]["spec"] == {
        "imageName": built.name,
        "placementGroupName": "control-plane",
        "type": "${HCLOUD_CONTROL_PLANE_MACHINE_TYPE}",
    }
    assert "carried to" in r.stderr


def test_a_users_kustomization_is_never_overwritten(built: Built, tmp_path: Path) -> None:
    """Before: --kustomize DIR replaced an existing kustomization.yaml without a word."""
    tree = caph_tree(tmp_path)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "kustomization.yaml").write_text("resources:\n- ../v1beta1/hcloud\n")
    r = manifests(built, "--from", str(built.manifest), "--cluster", str(tree / "hcloud"), "--kustomize", str(mine))
    assert r.returncode == 2
    assert f"{mine / 'kustomization.yaml'} exists and was not written by capi-image" in r.stderr
    assert "Traceback" not in r.stderr
    assert (mine / "kustomization.yaml").read_text() == "resources:\n- ../v1beta1/hcloud\n"
    assert sorted(p.name for p in mine.iterdir()) == ["kustomization.yaml"]


def test_a_duplicate_template_names_both_files(built: Built, tmp_path: Path) -> None:
    """Before: the message named one of the two files."""
    tree = caph_tree(tmp_path)
    bases = tree / "bases"
    shutil.copy(bases / "hcloud-mt-md-0-ubuntu.yaml", bases / "copy-of-md-0.yaml")
    r = manifests(built, "--from", str(built.manifest), "--cluster", str(tree))
    assert r.returncode == 2
    line = r.stderr.strip().splitlines()[-1]
    assert "defined more than once" in line
    assert "copy-of-md-0.yaml (document 1)" in line and "hcloud-mt-md-0-ubuntu.yaml (document 1)" in line
    # the bases alone: the placement-group patch is a second definition; the message says why
    r = manifests(built, "--from", str(built.manifest), "--cluster", str(bases))
    assert r.returncode == 2
    assert "placementGroup_patch.yaml (document 1)" in r.stderr
    assert "give the folder whose kustomization.yaml lists it" in r.stderr


def test_an_unknown_server_type_names_its_template_and_the_choices(built: Built, tmp_path: Path) -> None:
    """CAPH's v1.0.9 era templates name cpx31, which localcloud's catalog no longer lists.
    Before: "server type 'cpx31' does not exist", nothing about where or what instead."""
    cluster = tmp_path / "cluster.yaml"
    text = (CAPH_UPSTREAM / TREES["v1beta1"] / "bases/hcloud-mt-md-0-ubuntu.yaml").read_text()
    cluster.write_text(
        text.replace('"${HCLOUD_WORKER_MACHINE_TYPE}"', "cpx31").replace("${CLUSTER_NAME}", "c1")
        + "---\n"
        + (CAPH_UPSTREAM / TREES["v1beta1"] / "bases/hcloud-md-0-kubeadm.yaml")
        .read_text()
        .replace("${CLUSTER_NAME}", "c1")
    )
    r = manifests(built, "--from", str(built.manifest), "--cluster", str(cluster))
    assert r.returncode == 2, r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert f"server type 'cpx31' (named by HCloudMachineTemplate c1-md-0-{built.name.lower()})" in line
    assert "pass --server-type with one of: " in line and "cpx22" in line


def test_a_cluster_class_alone_says_to_pass_the_cluster(built: Built, tmp_path: Path) -> None:
    """Before: the generic "no KubeadmControlPlane, MachineDeployment ..." error."""
    upstream()
    r = manifests(
        built, "--from", str(built.manifest), "--cluster", str(CAPH_UPSTREAM / TREES["v1beta1"] / "cluster-class.yaml")
    )
    assert r.returncode == 2
    line = r.stderr.strip().splitlines()[-1]
    assert "the image comes from the Cluster's variables" in line
    assert "hcloudWorkerMachineImageName" in line and "pass the Cluster file" in line


def test_rolling_back_to_the_stock_image_reuses_the_original_template(built: Built, tmp_path: Path) -> None:
    """Before: ``--image ubuntu-24.04`` after a rollout created ``<name>-ubuntu-24.04``, a copy
    of the template the flavor started with."""
    tree = caph_tree(tmp_path)
    before = render(tree / "hcloud")
    assert manifests(built, "--from", str(built.manifest), "--cluster", str(tree)).returncode == 0
    r = manifests(built, "--image", "ubuntu-24.04", "--project", "p", "--cluster", str(tree))
    assert r.returncode == 0, r.stderr
    after = render(tree / "hcloud")
    assert pools(after) == pools(before)
    assert not [n for n in templates(after) if n.endswith("ubuntu-24.04")]
    assert "reusing ${CLUSTER_NAME}-control-plane" in r.stderr
    assert docs((tree / "bases/hcloud-kcp-ubuntu.yaml").read_text()) == docs(
        (CAPH_UPSTREAM / TREES["v1beta1"] / "bases/hcloud-kcp-ubuntu.yaml").read_text()
    )


def test_a_partial_recipe_image_is_refused(built: Built, tmp_path: Path) -> None:
    """Before: an image of ``--recipe minimal`` (no Kubernetes) had a production-looking name
    and no recipe label, and manifests rolled it into clusters."""
    assert built.name.endswith("-minimal"), built.name
    r = manifests(built, "--from", str(built.manifest), partial_ok=False)
    assert r.returncode == 2
    line = r.stderr.strip().splitlines()[-1]
    assert "was built with --recipe minimal" in line and "not a node image" in line


def test_the_in_process_command_gives_the_test_process_its_state_back(built: Built, tmp_path: Path) -> None:
    """rolloutkit.manifests runs the command in this process; the config directory its global
    option set (CAPI_IMAGE_CONFIG_DIR) and the logging it configured must not outlive it, or a
    later test in the same worker reads another project (it did: the golden plans failed)."""
    import structlog

    from builder import config

    before = config.config_dir(), structlog.get_config()
    r = manifests(built, "--from", str(built.manifest))
    assert r.returncode == 0, r.stderr
    assert (config.config_dir(), structlog.get_config()) == before
