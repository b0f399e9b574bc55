"""The recipe against image-builder v0.1.48's own files, read in place from
``../shared/reference/image-builder-v0.1.48`` (never copied in): goss's hcloud spec is what
verify checks, and the files the recipe writes in upstream's place mean what upstream's mean.

The goss spec is Go templates over YAML; the Linux, hcloud, ``pkg``-source branch is read here
line by line (the templates are not evaluated), and goss-vars.yaml — plain YAML — as data."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from provision.plan import Check, Put, Run
from provision.recipe import build_plan
from provision.steps import kubernetes, node, provider
from provision.steps.verify import checks

from ..prereq import require
from ..reference import UPSTREAM
from .recipes import ctx

GOSS = UPSTREAM / "packer/goss"
ROLES = UPSTREAM / "ansible/roles"
PARITY_DOC = Path(__file__).resolve().parents[2] / "docs/recipe-parity.md"


def _load(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(text)


if not UPSTREAM.is_dir():  # pragma: no cover - CI always has ../shared
    require(f"image-builder reference not found at {UPSTREAM} (CI needs ../shared beside the clone)", module=True)


def _linux_block(path: Path, header: str) -> dict[str, dict[str, str]]:
    """The static entries under ``header`` before the first template loop: name -> fields."""
    out: dict[str, dict[str, str]] = {}
    inside, current = False, ""
    for line in path.read_text().splitlines():
        if line.startswith(f"{header}:"):
            inside = True
            continue
        if not inside:
            continue
        if line.startswith("{{range") or line.startswith("{{ range"):
            break
        if m := re.match(r"^  ([^\s#{][^:]*):\s*$", line):
            current = m.group(1)
            out[current] = {}
        elif (m := re.match(r"^    (\w[\w-]*):\s*(.*)$", line)) and current:
            out[current][m.group(1)] = m.group(2).strip().strip('"')
    return out


def goss_hcloud_ubuntu_pkg() -> list[str]:
    """Every goss check for Ubuntu on hcloud with ``kubernetes_source_type=pkg`` (the default),
    as the name of the verify check that does it."""
    gvars = _load((GOSS / "goss-vars.yaml").read_text())
    ubuntu = gvars["ubuntu"]
    names: list[str] = []
    params = _linux_block(GOSS / "goss-kernel-params.yaml", "kernel-param")
    params.update({k: {"value": v["value"]} for k, v in ubuntu["common-kernel-param"].items()})
    names += [f"kernel-param {k}" for k in params]
    services = _linux_block(GOSS / "goss-service.yaml", "service")
    services.update({k: {f: str(v).lower() for f, v in d.items()} for k, d in ubuntu["common-service"].items()})
    for svc, want in services.items():
        unit = "chrony" if svc == "chronyd" else svc  # chronyd is an alias of chrony on Ubuntu
        names.append(f"service {unit} {'enabled' if want['enabled'] == 'true' else 'not enabled'}")
        names.append(f"service {unit} {'running' if want['running'] == 'true' else 'not running'}")
    names.append("package ntp not installed")  # goss-package.yaml: ntp installed: false
    names += [f"package {b} 1.31.4-1.1" for b in ("kubeadm", "kubelet", "kubectl")]
    names.append("package kubernetes-cni installed")
    names += [f"package {p} installed" for p in [*ubuntu["common-package"], *ubuntu["hcloud"]["package"]]]
    names += ["command containerd version", "command crictl ps"]
    pulled = re.search(r'stdout: \["coredns".*?\]', (GOSS / "goss-command.yaml").read_text())
    assert pulled, "goss-command.yaml: the pkg path's crictl images list moved"
    names += [f"command crictl images: {img} pre-pulled" for img in re.findall(r'"([\w-]+)"', pulled.group(0)[8:])]
    return names


def test_verify_covers_every_goss_check_for_ubuntu_2404_hcloud() -> None:
    wanted = goss_hcloud_ubuntu_pkg()
    have = {c.name for c in checks(ctx("ubuntu-2404"))}
    missing = [n for n in wanted if n not in have]
    assert not missing, f"goss checks verify does not do: {missing}"
    # goss counts a service (enabled + running) as one check, verify as two; the image list as one.
    goss_count = len(wanted) - sum(1 for n in wanted if n.startswith("service ")) // 2 - 6
    m = re.search(r"(\d+) goss checks", PARITY_DOC.read_text())
    assert m and int(m.group(1)) == goss_count, f"docs/recipe-parity.md should say {goss_count} goss checks"


def test_verify_leaves_out_what_goss_does_not_check_on_hcloud() -> None:
    have = {c.name for c in checks(ctx("ubuntu-2404"))}
    assert not {"package linux-tools-virtual installed", "package open-vm-tools installed"} & have


def test_cloud_init_logging_means_what_upstream_05_logging_means() -> None:
    ours = _load(provider.LOGGING_CFG)
    theirs = _load((ROLES / "providers/files/etc/cloud/cloud.cfg.d/05_logging.cfg").read_text())
    assert ours["output"] == theirs["output"]

    def ini(cfg: list[str]) -> list[str]:  # blank lines inside the ini text mean nothing
        return [line.strip() for line in "\n".join(cfg).splitlines() if line.strip()]

    assert [ini(c) for c in ours["log_cfgs"]] == [ini(c) for c in theirs["log_cfgs"]]


def _tc_lines(script: str) -> list[str]:
    return [re.sub(r'"?\$\{?DEV\}?"?', "DEV", line) for line in script.splitlines() if line.startswith("tc ")]


def test_etcd_tuning_script_does_what_upstreams_does() -> None:
    theirs = (ROLES / "node/files/usr/local/bin/etcd-network-tuning.sh").read_text()
    assert _tc_lines(node.ETCD_SCRIPT) == _tc_lines(theirs)
    for part in ("trap ", "ERR", "systemd-cat", "-t etcd-tuning", "set -o errexit -o nounset -o pipefail"):
        assert part in node.ETCD_SCRIPT


def test_profile_script_loads_kubectl_completion_like_upstreams() -> None:
    theirs = (ROLES / "kubernetes/files/etc/profile.d/kubernetes.sh").read_text()
    for part in ("__load_completion kubectl", "alias k=kubectl", "/etc/kubernetes/super-admin.conf", "admin.conf"):
        assert part in theirs and part in kubernetes.PROFILE_SCRIPT


def _rendered(profile: str) -> dict[str, list[str]]:
    """Step name -> every command and file path (with content) the step renders."""
    plan = build_plan(ctx(profile))
    out: dict[str, list[str]] = {}
    for step in plan.steps:
        texts: list[str] = []
        for op in step.operations:
            if isinstance(op, Put):
                texts.append(f"{op.path}\n{op.content.decode(errors='replace')}")
            elif isinstance(op, Run | Check):
                texts.append(op.command)
        out[step.name] = texts
    return out


PARITY_ROW = re.compile(
    r"^\| (?P<task>[^|]+) \| (?P<status>same|different|n/a) \| `(?P<step>[\w-]+)`: `(?P<marker>[^`]+)` \|"
)


def test_parity_table_names_steps_the_plan_renders() -> None:
    """Every row of the task table that says where the recipe does the task names a step and a
    piece of text that step renders (for Ubuntu 24.04): renaming or dropping it fails here."""
    rendered = _rendered("ubuntu-2404")
    rows = [m for line in PARITY_DOC.read_text().splitlines() if (m := PARITY_ROW.match(line))]
    assert len(rows) > 60, "the task table in docs/recipe-parity.md was not found"
    missing = [
        f"{m['task'].strip()} -> {m['step']}: {m['marker']}"
        for m in rows
        if not any(m["marker"] in text for text in rendered.get(m["step"], []))
    ]
    assert not missing, "parity table rows whose step no longer renders the named text:\n" + "\n".join(missing)


def test_parity_table_counts_are_the_tables() -> None:
    text = PARITY_DOC.read_text()
    statuses = re.findall(r"^\| [a-z]+ : [^|]+ \| (same|different|n/a) \|", text, flags=re.M)
    m = re.search(r"(\d+) tasks: (\d+) same, (\d+) different \(each with its reason\), (\d+) not\s+applicable", text)
    assert m, "the counts sentence in docs/recipe-parity.md moved"
    want = (len(statuses), statuses.count("same"), statuses.count("different"), statuses.count("n/a"))
    assert tuple(int(g) for g in m.groups()) == want, f"docs/recipe-parity.md counts should be {want}"
