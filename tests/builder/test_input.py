"""Bad input gets a specific error, exit code 2, and not a single mutating API call."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from builder.config import ConfigError
from builder.projects import load_project
from localcloud.server import LocalCloud

from ..buildkit import BUILD_TIMES, STUB_PROJECT, VERSIONS, build_command, cli_env, run_cli, write_project
from ..localclouds import LocalClouds


@pytest.fixture
def lc(localclouds: LocalClouds) -> LocalCloud:
    return localclouds.start(action_times=BUILD_TIMES, tokens=frozenset({"good-token"}))


def build(tmp: Path, lc: LocalCloud, text: str, token: str = "good-token") -> subprocess.CompletedProcess[str]:
    write_project(tmp / "config", "p", text)
    return run_cli(build_command(tmp), tmp / "config", lc.endpoint, token)  # type: ignore[no-any-return]


def mutating(lc: LocalCloud) -> list[str]:
    return [f"{r['method']} {r['path']}" for r in lc.admin().requests() if r["method"] != "GET"]


CASES = [
    ("malformed-yaml", "location: fsn1\nserver_type: [cpx22\n", "good-token", "is not valid YAML"),
    ("unknown-field", STUB_PROJECT + "colour: blue\n", "good-token", "colour: Extra inputs are not permitted"),
    (
        "unknown-os",
        STUB_PROJECT.replace("os: ubuntu-2404", "os: windows-11"),
        "good-token",
        "unknown OS profile 'windows-11'",
    ),
    ("bad-template", STUB_PROJECT + "image_name: '{nope}'\n", "good-token", "unknown placeholder(s) ['nope']"),
    ("template-positional", STUB_PROJECT + "image_name: 'x-{}'\n", "good-token", "unknown placeholder(s) ['{}']"),
    ("template-index", STUB_PROJECT + "image_name: 'x-{0}'\n", "good-token", "unknown placeholder(s) ['0']"),
    (
        "template-conversion",
        STUB_PROJECT + "image_name: 'x-{os!z}'\n",
        "good-token",
        "with a conversion or format spec",
    ),
    ("template-spec", STUB_PROJECT + "image_name: 'x-{os:>999999999}'\n", "good-token", "conversion or format spec"),
    ("template-nested", STUB_PROJECT + "image_name: 'x-{os:{build_id.__class__}}'\n", "good-token", "format spec"),
    ("template-attribute", STUB_PROJECT + "image_name: 'x-{os.__class__}'\n", "good-token", "['os.__class__']"),
    ("template-unbalanced", STUB_PROJECT + "image_name: 'x-{os'\n", "good-token", "is not a valid template"),
    (
        "reserved-label",
        STUB_PROJECT.replace("team: platform", "caph-image-name: sneaky"),
        "good-token",
        "label(s) ['caph-image-name'] are set by capi-image itself",
    ),
    (
        "reserved-labels",
        STUB_PROJECT.replace("team: platform", "created-by: me\n  build-id: x"),
        "good-token",
        "['build-id', 'created-by']",
    ),
    (
        "invalid-label",
        STUB_PROJECT.replace("team: platform", "team: v1.31+k3s"),
        "good-token",
        "label team='v1.31+k3s' is invalid",
    ),
    ("long-label", STUB_PROJECT.replace("team: platform", "team: " + "x" * 64), "good-token", "longer than 63"),
    ("server-type", STUB_PROJECT.replace("cpx22", "cx99"), "good-token", "server type 'cx99' does not exist"),
    ("location", STUB_PROJECT.replace("fsn1", "mars1"), "good-token", "location 'mars1' does not exist"),
    (
        "image",
        STUB_PROJECT + "image: windows-11\n",
        "good-token",
        "image 'windows-11' does not exist for architecture x86",
    ),
    ("image-id", STUB_PROJECT + "image: '999999999'\n", "good-token", "image 999999999 does not exist"),
    (
        "image-id-arch",
        STUB_PROJECT + "image: '100000004'\n",  # localcloud's ubuntu-24.04 for arm
        "good-token",
        "image 100000004 is for arm, server type cpx22 is x86",
    ),
    (
        "arch-mismatch",
        STUB_PROJECT + "architecture: arm\n",
        "good-token",
        "server type cpx22 is x86, the project asks for arm",
    ),
    (
        "not-offered",
        STUB_PROJECT.replace("cpx22", "cx23").replace("fsn1", "ash"),
        "good-token",
        "cx23 in ash: not offered there",
    ),
    ("versions", STUB_PROJECT.replace(str(VERSIONS), "/nonexistent/k8s.json"), "good-token", "does not exist"),
    ("wrong-token", STUB_PROJECT, "bad-token", "the API rejected the token (unauthorized"),
]


@pytest.mark.parametrize(("case", "text", "token", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_before_spending(
    lc: LocalCloud, tmp_path: Path, case: str, text: str, token: str, message: str
) -> None:
    r = build(tmp_path, lc, text, token)
    assert r.returncode == 2, r.stderr[-2000:]
    assert message in r.stderr, r.stderr[-2000:]
    assert mutating(lc) == []
    assert "bad-token" not in r.stderr + r.stdout


def test_missing_token_for_a_real_endpoint(tmp_path: Path) -> None:
    write_project(tmp_path / "config", "p", STUB_PROJECT + "endpoint: https://api.example.invalid/v1\n")
    env = cli_env(tmp_path / "config", "")
    del env["HCLOUD_ENDPOINT"], env["HCLOUD_TOKEN"]
    r = subprocess.run(
        [sys.executable, "-m", "builder.cli", "build", "-p", "p"], env=env, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 2
    assert "$HCLOUD_TOKEN is not set" in r.stderr


def test_unknown_project_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no project 'nope'.*known in .*: local"):
        load_project("nope")


def test_shipped_projects_load() -> None:
    cfg = load_project("local")
    assert cfg.endpoint == "localcloud"
    assert cfg.versions_path().exists()


VAR_FILE_CASES = [
    ("unknown-key", {"kubernetes_semvar": "v1.31.5"}, "kubernetes_semvar: not an image-builder v0.1.48 variable"),
    ("proxy", {"http_proxy": "http://proxy:3128"}, "http_proxy='http://proxy:3128' is not supported"),
    (
        "containerd-settings",
        {"containerd_additional_settings": "W3BsdWdpbnNd"},
        "containerd_additional_settings='W3BsdWdpbnNd' is not supported",
    ),
    ("server-type", {"server_type": "cx42"}, "server_type: a packer setting; set it in the project config"),
    ("ansible-vars", {"ansible_user_vars": "foo=bar"}, "passes variables to upstream's Ansible roles"),
    # was silently ignored: the recipe renders containerd's own unit for the installed major
    (
        "containerd-unit",
        {"containerd_service_url": "https://example.com/containerd.service"},
        "containerd_service_url='https://example.com/containerd.service' is not supported (the recipe renders",
    ),
]


@pytest.mark.parametrize(("case", "extra", "message"), VAR_FILE_CASES, ids=[c[0] for c in VAR_FILE_CASES])
def test_var_file_keys_are_honoured_or_refused(
    lc: LocalCloud, tmp_path: Path, case: str, extra: dict[str, str], message: str
) -> None:
    """A var-file key this tool would not apply is exit 2 naming the key — never silently dropped."""
    var_file = tmp_path / "vars.json"
    var_file.write_text(json.dumps({**json.loads(VERSIONS.read_text()), **extra}))
    r = build(tmp_path, lc, STUB_PROJECT.replace(str(VERSIONS), str(var_file)))
    assert r.returncode == 2, r.stderr[-2000:]
    assert message in r.stderr, r.stderr[-2000:]
    assert mutating(lc) == []


def test_var_file_keys_at_upstream_defaults_are_accepted(lc: LocalCloud, tmp_path: Path) -> None:
    """Upstream's own defaults (as a copied packer/config var file holds them) and keys upstream's
    Ubuntu path ignores pass."""
    var_file = tmp_path / "vars.json"
    defaults = {"http_proxy": "", "containerd_gvisor_runtime": "false", "reenable_public_repos": True,
                "kubernetes_rpm_version": "1.31.4", "goss_version": "0.3.23", "build_name": "ubuntu-2404",
                "containerd_service_url": "https://raw.githubusercontent.com/containerd/containerd/refs/tags/"
                "v{{user `containerd_version`}}/containerd.service"}  # fmt: skip
    var_file.write_text(json.dumps({**json.loads(VERSIONS.read_text()), **defaults}))
    r = build(tmp_path, lc, STUB_PROJECT.replace(str(VERSIONS), str(var_file)))
    assert r.returncode == 0, r.stderr[-2000:]


@pytest.mark.parametrize("token", ["good-token\n", "good-tok€n", "good token"], ids=["newline", "non-ascii", "space"])
def test_a_token_with_a_character_no_token_has_is_bad_input(lc: LocalCloud, tmp_path: Path, token: str) -> None:
    r = build(tmp_path, lc, STUB_PROJECT, token)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "$HCLOUD_TOKEN holds a character an API token cannot have" in r.stderr
    assert lc.admin().requests() == []  # not one call, not even a GET
    for rendering in (token, token.strip(), repr(token)[1:-1], json.dumps(token)[1:-1]):
        assert rendering not in r.stderr + r.stdout


def test_every_rendering_of_a_secret_is_redacted() -> None:
    from builder import log as logmod

    secret = "s3cr3t-tok€n\n"
    logmod.redact(secret)
    try:
        for text in (f"Bearer {secret}", repr(f"Bearer {secret}"), json.dumps({"h": f"Bearer {secret}"}),
                     f"{secret.encode('unicode_escape').decode()}", "s3cr3t-tok€n"):  # fmt: skip
            scrubbed = logmod.scrub(text)
            assert "s3cr3t" not in scrubbed, (text, scrubbed)
    finally:
        logmod.forget_secrets()


def _var_file_case(tmp: Path, case: str) -> Path:
    if case == "directory":
        (tmp / "vars-dir").mkdir()
        return tmp / "vars-dir"
    path = tmp / "vars.json"
    if case == "binary":
        path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    else:  # nested far beyond any var file
        path.write_text("[" * 100_000 + "]" * 100_000)
    return path


@pytest.mark.parametrize("case", ["directory", "binary", "deeply-nested"])
def test_a_var_file_that_is_no_var_file(lc: LocalCloud, tmp_path: Path, case: str) -> None:
    r = build(tmp_path, lc, STUB_PROJECT.replace(str(VERSIONS), str(_var_file_case(tmp_path, case))))
    assert r.returncode == 2, r.stderr[-2000:]
    assert "versions var file" in r.stderr and "Traceback" not in r.stderr
    assert mutating(lc) == []


@pytest.mark.parametrize("script", ["/etc/passwd", "../../../../etc/passwd"])
def test_scripts_outside_the_config_directory_need_an_opt_in(lc: LocalCloud, tmp_path: Path, script: str) -> None:
    text = STUB_PROJECT + f"provision:\n  scripts: [{script}]\n"
    r = build(tmp_path, lc, text)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "is outside the config directory" in r.stderr
    assert mutating(lc) == []
    plan = run_cli([sys.executable, "-m", "builder.cli", "plan", "-p", "p"], tmp_path / "config", lc.endpoint)
    assert plan.returncode == 2 and "outside the config directory" in plan.stderr


def test_gc_refuses_an_age_beyond_any_date(tmp_path: Path, lc: LocalCloud) -> None:
    write_project(tmp_path / "config", "p", STUB_PROJECT)
    r = run_cli([sys.executable, "-m", "builder.cli", "gc", "-p", "p", "--older-than", "99999999999d"],
                tmp_path / "config", lc.endpoint)  # fmt: skip
    assert r.returncode == 2, r.stderr[-2000:]
    assert "longer than 36500 days" in r.stderr and "Traceback" not in r.stderr


def test_matrix_parallel_zero_is_refused(tmp_path: Path, lc: LocalCloud) -> None:
    write_project(tmp_path / "config", "p", STUB_PROJECT + "matrix: {os: [ubuntu-2404]}\n")
    r = run_cli([*build_command(tmp_path), "--matrix", "--parallel", "0"], tmp_path / "config", lc.endpoint)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "--parallel must be at least 1" in r.stderr
    assert mutating(lc) == []


def test_the_reserved_labels_are_every_label_the_build_sets() -> None:
    """A project may not set a label the build sets itself: the list of reserved labels is
    exactly what snapshot_labels adds, plus cleanup's, CAPH's and the SBOM's own."""
    import datetime as dt

    from builder.caph import CAPH_LABEL
    from builder.config import RESERVED_LABELS
    from builder.pipeline.preflight import snapshot_labels
    from builder.resources import CREATED_BY
    from builder.sbom.document import LABEL_CONTENT, LABEL_FILE
    from provision.versions import load_versions

    config = load_project("prod")
    versions = load_versions(config.versions_path())
    set_by_build = snapshot_labels(
        config.model_copy(update={"labels": {}}),
        versions,
        base={"created-by": CREATED_BY, "build-id": "00000000"},  # Build's resource labels
        started=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        arch="x86",
    )
    assert {*set_by_build, CAPH_LABEL, "role", LABEL_FILE, LABEL_CONTENT} == RESERVED_LABELS
