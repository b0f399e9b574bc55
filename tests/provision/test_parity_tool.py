"""``make parity``'s pure parts: packer's variables as image-builder's hcloud build passes them,
reading a machine, and the comparison that decides the run's exit code."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from tests.parity import upstream
from tests.parity.rules import IGNORE
from tests.parity.state import Rule, compare, parse, report

from .test_upstream_parity import UPSTREAM

REPO = Path(__file__).resolve().parents[2]


def test_packer_vars_are_upstream_defaults_overridden_by_the_var_file() -> None:
    var_file = json.loads((REPO / "config/vars/k8s-1.31-localcloud.json").read_text())
    v = upstream.packer_user_vars(UPSTREAM, var_file, "debian-12")
    common = v["ansible_common_vars"]
    # packer.json declares ansible_common_vars empty; config/ansible-args.json must win.
    assert "containerd_version=1.6.20 " in common and "kubernetes_source_type=http " in common
    assert "crictl_source_type=pkg " in common  # packer/config/kubernetes.json's default
    assert "{{" not in common


def test_k8s_image_tarball_has_the_shape_upstreams_script_rewrites() -> None:
    data = upstream.docker_archive("kube-proxy", "amd64", "v1.31.4")
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        manifest = json.loads(t.extractfile("manifest.json").read())
        repos = json.loads(t.extractfile("repositories").read())
    assert manifest[0]["RepoTags"] == ["registry.k8s.io/kube-proxy-amd64:v1.31.4"]
    assert list(repos) == ["registry.k8s.io/kube-proxy-amd64"]


STATE = """=== packages
lvm2 2.03.16-2
thin-provisioning-tools 0.9.0-2
=== enabled
containerd.service
=== active
=== sysctl
net.ipv4.ip_forward = 1
fs.inode-nr = 1 2
=== modules
=== modules-persisted
overlay
=== files
/etc/hostname\t644\tf\t
/usr/bin/x\t777\tl\t/usr/local/bin/x
=== hashes
0123456789abcdef0123456789abcdef  /etc/hostname
=== end
"""


def test_compare_explains_ignores_and_reports_the_rest() -> None:
    theirs = parse(STATE)
    ours = parse(
        STATE.replace("thin-provisioning-tools 0.9.0-2\n", "").replace("fs.inode-nr = 1 2", "fs.inode-nr = 3 4")
    )
    assert theirs.items["files"]["/etc/hostname"] == "644 0123456789abcdef"
    assert theirs.items["files"]["/usr/bin/x"] == "777 -> /usr/local/bin/x"
    diffs = compare(theirs, ours, [], IGNORE)
    assert [(d.kind, d.item, d.side, d.reason) for d in diffs] == [
        ("packages", "thin-provisioning-tools", "upstream", None)
    ]
    assert "**1 unexplained difference(s)**" in report(diffs, "# r")
    explained = compare(theirs, ours, [Rule("packages", "thin-*", "recommended by lvm2", side="upstream")], IGNORE)
    assert explained[0].reason == "recommended by lvm2"
    assert "**0 unexplained difference(s)**, 1 explained" in report(explained, "# r")
    # a rule for one side does not explain the other
    assert compare(ours, theirs, [Rule("packages", "thin-*", "x", side="upstream")], IGNORE)[0].reason is None


def test_a_rule_names_the_side_it_explains() -> None:
    """'same settings, own text' (side=differ) must not explain a file only one side has."""
    both, only_ours = "/etc/both.conf", "/etc/ours.conf"
    a = parse(f"=== files\n{both}\t644\tf\t\n=== hashes\naaaa  {both}\n")
    b = parse(f"=== files\n{both}\t644\tf\t\n{only_ours}\t644\tf\t\n=== hashes\nbbbb  {both}\ncccc  {only_ours}\n")
    rules = [Rule("files", "/etc/*.conf", "own text", side="differ")]
    found = {d.item: d.reason for d in compare(a, b, rules, [])}
    assert found == {both: "own text", only_ours: None}
    rules.append(Rule("files", only_ours, "ours only", side="ours"))
    assert {d.item: d.reason for d in compare(a, b, rules, [])}[only_ours] == "ours only"
    assert not Rule("files", only_ours, "x", side="upstream").matches("files", only_ours, "ours")
