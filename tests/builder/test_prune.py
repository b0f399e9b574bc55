"""``capi-image prune`` against localcloud: published snapshots of several families from real
(stub-backend) builds; N kept per family, in-use snapshots spared, nothing deleted without --yes."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from builder.cloud import make_client
from builder.ops.prune import family_of
from localcloud.server import LocalCloud

from ..buildkit import STUB_PROJECT, VERSIONS, cli_env, project, run_build, snapshots, stub_cloud, write_project


@dataclass
class World:
    lc: LocalCloud
    config: Path
    ids: dict[str, list[int]]  # family → snapshot ids, oldest first
    other_project: int
    server_image: int
    manifest_image: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("prune")
    k130 = tmp / "k8s-1.30.json"
    k130.write_text(VERSIONS.read_text().replace("1.31.4", "1.30.8").replace("v1.31", "v1.30"))
    families = [
        ("a", {"os": "ubuntu-2404"}, 3),
        ("b", {"os": "ubuntu-2204"}, 2),
        ("c", {"os": "ubuntu-2404", "versions": k130}, 1),
    ]
    with stub_cloud() as lc:
        ids: dict[str, list[int]] = {}
        for fam, overrides, count in families:
            for _ in range(count):
                cfg = project(lc.endpoint, image_name="k8s-{kubernetes_semver}-{os}-{build_id}", **overrides)
                out = run_build(lc, cfg, tmp)
                assert out.result is not None and out.result.image_id, out.error
                ids.setdefault(fam, []).append(out.result.image_id)
        # Same family, another project: never this project's business.
        out = run_build(lc, project(lc.endpoint, image_name="k8s-{build_id}", labels={"team": "other"}), tmp)
        assert out.result is not None and out.result.image_id
        # A server runs from family a's oldest snapshot; family b's oldest is named in a manifest.
        client, _ = make_client("t", lc.endpoint)
        server = client.servers.create(
            name="node-1",
            server_type=client.server_types.get_by_name("cpx22"),
            image=client.images.get_by_id(ids["a"][0]),
            location=client.locations.get_by_name("fsn1"),
        )
        server.action.wait_until_finished()
        b_oldest = client.images.get_by_id(ids["b"][0])
        write_project(tmp / "config", "p", STUB_PROJECT + "retention: {keep: 1}\n")
        (tmp / "clusters").mkdir()
        (tmp / "clusters" / "md.yaml").write_text(
            "kind: HCloudMachineTemplate\nmetadata: {name: md}\nspec:\n  template:\n    spec:\n"
            f"      imageName: {(b_oldest.labels or {})['caph-image-name']}\n      type: cpx22\n"
        )
        yield World(
            lc, tmp / "config", ids, out.result.image_id, ids["a"][0], (b_oldest.labels or {})["caph-image-name"]
        )


def prune(w: World, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "builder.cli", "prune", "-p", "p", "-o", "json", "--log-format", "json", *args]
    return subprocess.run(cmd, env=cli_env(w.config, w.lc.endpoint), capture_output=True, text=True, timeout=120)


def snapshot_ids(w: World) -> set[int]:
    return {i["id"] for i in snapshots(w.lc)}


def test_families() -> None:
    assert (
        family_of({"os": "ubuntu-2404", "arch": "x86", "kubernetes_version": "v1.31.4"}) == "ubuntu-2404/x86/k8s-v1.31"
    )


def test_dry_run_then_yes(world: World) -> None:
    before = snapshot_ids(world)
    clusters = str(world.config.parent / "clusters")

    r = prune(world, "--in-use", clusters)
    assert r.returncode == 0, r.stderr
    rows = {row["id"]: row for row in json.loads(r.stdout)}
    assert snapshot_ids(world) == before, "a dry run deleted something"
    a, b, c = world.ids["a"], world.ids["b"], world.ids["c"]
    assert world.other_project not in rows  # another project's labels: not listed at all
    assert set(rows) == {*a, *b, *c}
    # keep 1 per family: the newest ...
    for newest in (a[-1], b[-1], c[-1]):
        assert rows[newest]["action"] == "keep"
        assert rows[newest]["reason"].startswith("newest 1 of ")
    # ... and what is in use, with the reason
    assert rows[a[0]]["action"] == "keep"
    assert "image of server(s) node-1" in rows[a[0]]["reason"]
    assert rows[b[0]]["action"] == "keep"
    assert rows[b[0]]["reason"] == f"named in {clusters}/md.yaml: spec.template.spec.imageName"
    # only family a's middle snapshot goes
    assert [i for i, row in rows.items() if row["action"] == "delete"] == [a[1]]
    assert rows[a[1]]["outcome"].startswith("would delete")

    # Without the manifest, b's oldest is no longer spared.
    r = prune(world)
    assert {row["id"] for row in json.loads(r.stdout) if row["action"] == "delete"} == {a[1], b[0]}
    assert snapshot_ids(world) == before

    r = prune(world, "--in-use", clusters, "--yes")
    assert r.returncode == 0, r.stderr
    assert before - snapshot_ids(world) == {a[1]}
    rows = {row["id"]: row for row in json.loads(r.stdout)}
    assert rows[a[1]]["outcome"] == "deleted"

    # --keep on the command line wins over retention.keep; a second run has nothing more to do.
    r = prune(world, "--in-use", clusters, "--yes", "--keep", "3")
    assert [row for row in json.loads(r.stdout) if row["action"] == "delete"] == []


def test_bad_input(world: World) -> None:
    r = prune(world, "--in-use", "/nonexistent/dir")
    assert r.returncode == 2
    assert "--in-use /nonexistent/dir does not exist" in r.stderr
    r = prune(world, "--keep", "0")
    assert r.returncode == 2
    assert "at least 1" in r.stderr


TOPOLOGY = """\
apiVersion: cluster.x-k8s.io/v1beta1
kind: Cluster
metadata: {{name: prod}}
spec:
  topology:
    class: quick-start
    version: v1.31.4
    variables:
      - name: hcloudControlPlaneMachineType
        value: cpx32
      - name: hcloudWorkerMachineImageName
        value: {name}
"""


@pytest.mark.parametrize(
    "case",
    ["topology-variable", "override", "env-value-by-id", "dotenv-file", "helm-template", "comment"],
)
def test_anything_naming_an_image_spares_it(world: World, tmp_path: Path, case: str) -> None:
    """Not only ``imageName``: a topology variable, an override, an env value (by id), a .env
    file, an unparsable Helm template, even a comment — and the output says where."""
    # A family of its own, two snapshots: keep 1 would delete the older one, the victim.
    builds = [
        run_build(
            world.lc,
            project(world.lc.endpoint, image_name="k8s-{kubernetes_semver}-{os}-{build_id}", os="debian-12"),
            tmp_path,
        )
        for _ in range(2)
    ]
    assert builds[0].result is not None and builds[0].result.image_id and builds[0].result.image_name
    victim, name = builds[0].result.image_id, builds[0].result.image_name
    files = {
        "topology-variable": ("cluster.yaml", TOPOLOGY.format(name=name), "spec.topology.variables[1].value"),
        "override": (
            "cluster.yaml",
            "kind: Cluster\nspec:\n  topology:\n    workers:\n      machineDeployments:\n"
            "        - class: md\n          variables:\n            overrides:\n"
            f"              - name: hcloudWorkerMachineImageName\n                value: {name}\n",
            "spec.topology.workers.machineDeployments[0].variables.overrides[0].value",
        ),
        "env-value-by-id": (
            "deploy.yaml",
            f"kind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n        - env:\n"
            f"            - name: HCLOUD_IMAGE\n              value: '{victim}'\n",
            "spec.template.spec.containers[0].env[0].value",
        ),
        "dotenv-file": ("cluster.env", f"HCLOUD_IMAGE={name}\n", "cluster.env:1"),
        "helm-template": ("values.yaml", f'image: {{{{ .Values.image | default "{name}" }}}}\n', "values.yaml:1"),
        "comment": ("cluster.yaml", f"kind: Cluster  # rolled back from {name}\n", "cluster.yaml:1"),
    }
    file, text, where = files[case]
    (tmp_path / "in-use").mkdir()
    (tmp_path / "in-use" / file).write_text(text)
    r = prune(world, "--in-use", str(tmp_path / "in-use"), "--yes")
    assert r.returncode == 0, r.stderr
    row = next(row for row in json.loads(r.stdout) if row["id"] == victim)
    assert row["action"] == "keep", row
    assert row["reason"].startswith("named in ") and row["reason"].endswith(where), row["reason"]
    assert victim in snapshot_ids(world)


def kubectl_list(image_name: str) -> str:
    """What ``kubectl get hcloudmachinetemplates,machinedeployments -A -o yaml`` prints: one
    ``kind: List`` whose items are the objects (a MachineDeployment scaled to 0 has no server
    that would protect its image)."""
    return f"""\
apiVersion: v1
items:
- apiVersion: infrastructure.cluster.x-k8s.io/v1beta1
  kind: HCloudMachineTemplate
  metadata:
    name: md-scaled-to-zero
    namespace: team-a
    resourceVersion: "4711"
  spec:
    template:
      spec:
        imageName: {image_name}
        type: cpx22
- apiVersion: cluster.x-k8s.io/v1beta2
  kind: MachineDeployment
  metadata:
    name: md-scaled-to-zero
    namespace: team-a
  spec:
    clusterName: prod
    replicas: 0
    template:
      spec:
        infrastructureRef:
          apiGroup: infrastructure.cluster.x-k8s.io
          kind: HCloudMachineTemplate
          name: md-scaled-to-zero
kind: List
metadata:
  resourceVersion: ""
"""


@pytest.mark.parametrize("form", ["yaml", "json"])
def test_in_use_from_the_management_cluster_on_stdin(world: World, tmp_path: Path, form: str) -> None:
    """``kubectl get … -o yaml | capi-image prune --in-use -`` spares what the management
    cluster references and says which object; an empty pipe is refused, never read as "nothing
    in use"."""
    builds = [
        run_build(world.lc, project(world.lc.endpoint, image_name="k8s-{build_id}", os="debian-13"), tmp_path)
        for _ in range(2)
    ]
    assert builds[0].result is not None and builds[0].result.image_id and builds[0].result.image_name
    victim, name = builds[0].result.image_id, builds[0].result.image_name
    text = kubectl_list(name)
    if form == "json":
        text = json.dumps(YAML(typ="safe").load(text), indent=4)
    cmd = [sys.executable, "-m", "builder.cli", "prune", "-p", "p", "-o", "json", "--log-format", "json"]
    env = cli_env(world.config, world.lc.endpoint)
    run = functools.partial(subprocess.run, env=env, capture_output=True, text=True, timeout=120)
    empty = run([*cmd, "--in-use", "-", "--yes"], input="")
    assert empty.returncode == 2
    assert "--in-use - read nothing from standard input" in empty.stderr
    assert victim in snapshot_ids(world)
    r = run([*cmd, "--in-use", "-", "--yes"], input=text)
    assert r.returncode == 0, r.stderr
    row = next(row for row in json.loads(r.stdout) if row["id"] == victim)
    assert row["action"] == "keep", row
    assert row["reason"] == (
        "named in stdin: HCloudMachineTemplate team-a/md-scaled-to-zero: spec.template.spec.imageName"
    ), row["reason"]
    assert victim in snapshot_ids(world)
