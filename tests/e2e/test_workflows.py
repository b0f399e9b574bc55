"""The GitHub workflows: valid against the GitHub workflow JSON schema (check-jsonschema's
vendored copy), and every capi-image call in them names a real command, real options and a
real project."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from ruamel.yaml import YAML

from builder.cli import app
from builder.config import config_dir
from builder.ops.matrix import expand
from builder.projects import load_project

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
SCHEMAS = ("vendor.github-workflows", "custom.github-workflows-require-timeout")
CHECKER = Path(sys.executable).parent / "check-jsonschema"


def check(schema: str, *files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CHECKER), "--builtin-schema", schema, *map(str, files)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def load(name: str) -> Any:
    return YAML(typ="safe").load((ROOT / ".github" / "workflows" / name).read_text())


def test_the_three_workflows_exist() -> None:
    assert [p.name for p in WORKFLOWS] == ["build.yml", "ci.yml", "nightly.yml"]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_workflows_match_the_schema(schema: str) -> None:
    r = check(schema, *WORKFLOWS)
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_schema_check_catches_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text((ROOT / ".github/workflows/build.yml").read_text().replace("runs-on:", "runs_on:"))
    r = check(SCHEMAS[0], broken)
    assert r.returncode != 0
    assert "runs-on" in r.stdout + r.stderr


def _calls() -> list[tuple[str, list[str]]]:
    """Every `capi-image …` command line in a run step, as argv."""
    found = []
    for wf in WORKFLOWS:
        for job in YAML(typ="safe").load(wf.read_text())["jobs"].values():
            for step in job["steps"]:
                for line in re.split(r"\n|;|&&|\|\||>>|>", step.get("run", "").replace("\\\n", " ")):
                    if "capi-image " in line:
                        argv = shlex.split(line.split("capi-image ", 1)[1])
                        found.append((wf.name, argv))
    return found


def test_every_capi_image_call_uses_real_options() -> None:
    group: Any = typer.main.get_command(app)  # typer's own click-like group
    calls = _calls()
    assert {argv[0] for _, argv in calls} >= {"build", "manifests", "summary", "prune", "gc"}
    for wf, argv in calls:
        cmd = group.commands.get(argv[0])
        assert cmd is not None, f"{wf}: no command {argv[0]}"
        options = {o for p in cmd.params for o in p.opts}
        for arg in argv[1:]:
            if arg.startswith("--"):
                assert arg.split("=")[0] in options, f"{wf}: capi-image {argv[0]} has no option {arg}"


def test_projects_environments_and_secrets() -> None:
    projects = sorted(
        p.stem
        for p in (config_dir() / "projects").glob("*.yaml")
        if p.stem != "local" and not p.stem.startswith("local-")
    )
    build, nightly = load("build.yml"), load("nightly.yml")
    inputs = build["on"]["workflow_dispatch"]["inputs"]
    assert sorted(inputs["project"]["options"]) == projects
    assert sorted(nightly["jobs"]["rebuild"]["strategy"]["matrix"]["project"]) == projects
    assert nightly["on"]["schedule"][0]["cron"]
    for job, env_expr in ((build["jobs"]["build"], "inputs.project"), (nightly["jobs"]["rebuild"], "matrix.project")):
        assert job["environment"] == "${{ " + env_expr + " }}"
        # Secrets only on the steps that call the API (pip and third-party actions never see them)
        assert not {"HCLOUD_TOKEN", "CONTAINER_REGISTRY_URL"} & set(job.get("env", {}))
        for step in job["steps"]:
            # Inputs reach the shell through env, never pasted into the script (injection).
            assert "${{" not in step.get("run", ""), step
            api = any(f"capi-image {c}" in step.get("run", "") for c in ("build", "manifests", "gc", "prune"))
            assert (step.get("env", {}).get("HCLOUD_TOKEN") == "${{ secrets.HCLOUD_TOKEN }}") == api, step
            if "capi-image build" in step.get("run", ""):
                assert step["env"]["CONTAINER_REGISTRY_URL"] == "${{ secrets.CONTAINER_REGISTRY_URL }}"
            elif "env" in step:
                assert "CONTAINER_REGISTRY_URL" not in step["env"], step
    # a failed build as well as a cancelled one leaves nothing (build.yml; nightly sweeps always)
    [sweep] = [s for s in build["jobs"]["build"]["steps"] if "capi-image gc" in s.get("run", "")]
    assert sweep["if"] == "failure() || cancelled()"
    for name in projects:  # what the nightly job builds: a valid matrix, checked offline
        variants = expand(load_project(name))
        assert variants and all(v.config.profile.name.startswith("ubuntu") for v in variants)
    assert sorted(inputs["os"]["options"]) == sorted(
        {v.config.os for name in projects for v in expand(load_project(name))}
    )


def test_ci_runs_the_tests_with_ci_visible() -> None:
    """sudo's env_reset drops the environment: every "fail under CI instead of skipping" guard
    would skip on GitHub unless the test step keeps CI (and the reference paths) through sudo."""
    job = load("ci.yml")["jobs"]["test"]
    assert job["env"]["CI"] == "true"
    [test] = [s for s in job["steps"] if s.get("name") == "Test"]
    kept = test["run"].split("--preserve-env=", 1)[1].split()[0].split(",")
    assert {"CI", "HCLOUD_OPENAPI_SPEC", "IMAGE_BUILDER_REFERENCE", "CAPH_UPSTREAM", "CAPH_CRD"} <= set(kept)
    # the OpenAPI document is checked against the digest of the one the tests were written for
    [spec] = [s for s in job["steps"] if "cloud.spec.json" in s.get("run", "")]
    assert "sha256sum --check" in spec["run"] and len(job["env"]["HCLOUD_OPENAPI_SHA256"]) == 64
    # the reference the parity tests read is provided, at upstream's tag
    [ref] = [s for s in job["steps"] if s.get("with", {}).get("repository") == "kubernetes-sigs/image-builder"]
    assert ref["with"]["ref"] == "v0.1.48"
    assert job["env"]["IMAGE_BUILDER_REFERENCE"].endswith(ref["with"]["path"] + "/images/capi")


def test_actions_are_pinned_by_commit() -> None:
    """A tag can be moved to other code; a commit cannot. The tag stays readable in a comment."""
    for wf in WORKFLOWS:
        for line in wf.read_text().splitlines():
            if "uses:" in line:
                ref = line.split("uses:", 1)[1].split("#")[0].strip()
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", ref), f"{wf.name}: {line.strip()}"
                assert re.search(r"#\s*v\d", line), f"{wf.name}: no tag comment: {line.strip()}"
