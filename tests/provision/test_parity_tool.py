"""``make parity``'s pure parts: packer's variables as image-builder's hcloud build passes them,
reading a machine, and the comparison that decides the run's exit code."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from localcloud.artifacts import APT_PATH, SERIES, mirror_root
from localcloud.paths import default_cache_dir
from tests.parity import upstream
from tests.parity.rules import IGNORE, RULES
from tests.parity.state import Rule, compare, config_digest, parse, report

from ..conftest import require_mirror
from ..reference import UPSTREAM

REPO = Path(__file__).resolve().parents[2]


def test_packer_vars_are_upstream_defaults_overridden_by_the_var_file() -> None:
    var_file = json.loads((REPO / "config/vars/k8s-1.31-localcloud.json").read_text())
    v = upstream.packer_user_vars(UPSTREAM, var_file, "debian-13")
    common = v["ansible_common_vars"]
    # packer.json declares ansible_common_vars empty; config/ansible-args.json must win.
    assert "containerd_version=2.1.9 " in common and "kubernetes_source_type=pkg " in common
    assert "crictl_source_type=pkg " in common  # packer/config/kubernetes.json's default
    assert "{{" not in common


def test_upstreams_run_gets_the_mirrors_files_never_this_recipes(tmp_path: Path) -> None:
    """The containerd unit and the Kubernetes repository upstream's run uses are the mirror's
    (containerd's own unit, the signed repository), not files this recipe renders."""
    var_file = json.loads((REPO / "config/vars/k8s-1.31-localcloud.json").read_text())
    user = upstream.packer_user_vars(UPSTREAM, var_file, "debian-13")
    upstream.write_extras(tmp_path, "http://10.0.2.2:1/m/registry")
    _, extra = upstream.ansible_vars(user, "http://10.0.2.2:1/m", "http://10.0.2.2:2", tmp_path)
    assert extra["containerd_service_url"] == "http://10.0.2.2:1/m/containerd/v2.1.9/containerd.service"
    assert extra["kubernetes_deb_repo"] == "http://10.0.2.2:1/m/pkgs/core:/stable:/v1.31/deb/"
    assert extra["kubernetes_deb_gpg_key"] == extra["kubernetes_deb_repo"] + "Release.key"
    assert not list(tmp_path.rglob("containerd.service"))
    tasks = (tmp_path / "roles" / upstream.PRE_ROLE / "tasks" / "main.yml").read_text()
    assert tasks.count("STANDIN") == 4


def test_explanations_name_one_item_each() -> None:
    for rule in RULES:
        assert rule.exact and not any(c in rule.pattern for c in "*?["), rule


def test_config_files_compare_by_meaning() -> None:
    """Two texts with the same settings (other comments, order, quoting) are the same item;
    a changed setting is not."""
    a = b"# c\nversion = 3\n[plugins.'x'.y]\n  sandbox = 'p:3.10'\n"
    b = b'version = 3\n\n[plugins."x".y]\nsandbox = "p:3.10" # same\n'
    assert config_digest("/etc/containerd/config.toml", a) == config_digest("/etc/containerd/config.toml", b)
    assert config_digest("/etc/containerd/config.toml", a) != config_digest(
        "/etc/containerd/config.toml", a.replace(b"3.10", b"3.9")
    )
    unit_a = b"[Service]\n# why\nExecStart=\nExecStart=/usr/bin/k\nRestart=always\n"
    unit_b = b"[Service]\nRestart=always\nExecStart=\nExecStart=/usr/bin/k\n"
    assert config_digest("/x/k.service", unit_a) == config_digest("/x/k.service", unit_b)
    # the order of a key's repeated values is meaning (ExecStart= resets)
    unit_c = b"[Service]\nRestart=always\nExecStart=/usr/bin/k\nExecStart=\n"
    assert config_digest("/x/k.service", unit_a) != config_digest("/x/k.service", unit_c)
    state = parse("=== files\n/etc/a.toml\t644\tf\t\n=== contents\n/etc/a.toml\tdmVyc2lvbiA9IDMK\n")
    assert state.items["files"]["/etc/a.toml"].startswith("644 parsed:")


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
    explained = compare(
        theirs, ours, [Rule("packages", "thin-*", "recommended by lvm2", side="upstream", exact=False)], IGNORE
    )
    assert explained[0].reason == "recommended by lvm2"
    assert "**0 unexplained difference(s)**, 1 explained" in report(explained, "# r")
    # a rule for one side does not explain the other
    assert (
        compare(ours, theirs, [Rule("packages", "thin-*", "x", side="upstream", exact=False)], IGNORE)[0].reason is None
    )


def test_a_rule_names_the_side_it_explains() -> None:
    """'same settings, own text' (side=differ) must not explain a file only one side has."""
    both, only_ours = "/etc/both.conf", "/etc/ours.conf"
    a = parse(f"=== files\n{both}\t644\tf\t\n=== hashes\naaaa  {both}\n")
    b = parse(f"=== files\n{both}\t644\tf\t\n{only_ours}\t644\tf\t\n=== hashes\nbbbb  {both}\ncccc  {only_ours}\n")
    rules = [Rule("files", "/etc/*.conf", "own text", side="differ", exact=False)]
    found = {d.item: d.reason for d in compare(a, b, rules, [])}
    assert found == {both: "own text", only_ours: None}
    rules.append(Rule("files", only_ours, "ours only", side="ours"))
    assert {d.item: d.reason for d in compare(a, b, rules, [])}[only_ours] == "ours only"
    assert not Rule("files", only_ours, "x", side="upstream").matches("files", only_ours, "ours")


def test_the_apt_key_standin_gives_apt_a_keyring_it_reads(tmp_path: Path) -> None:
    """Upstream's apt_key task runs ``apt-key add`` and lists keys with ``apt-key adv``; the
    stand-in must leave a keyring apt reads (gpg's own keybox format is refused: "unsupported
    filetype" on Debian 13, and the Kubernetes repository was then "not signed")."""
    require_mirror()
    repo = mirror_root(default_cache_dir()) / APT_PATH.format(series=SERIES)
    script = tmp_path / "apt-key"
    script.write_text(upstream.APT_KEY_SCRIPT)
    script.chmod(0o755)
    ring, box = tmp_path / "trusted.gpg.d" / "standin.gpg", tmp_path / "box" / "pubring.kbx"
    env = {**os.environ, "APT_KEY_RING": str(ring), "APT_KEY_BOX": str(box), "GNUPGHOME": str(tmp_path / "g")}
    (tmp_path / "g").mkdir(mode=0o700)
    added = subprocess.run([str(script), "add", "-"], input=(repo / "Release.key").read_bytes(), env=env,
                           capture_output=True)  # fmt: skip
    assert added.returncode == 0, added.stderr
    listed = subprocess.run([str(script), "adv", "--list-public-keys", "--keyid-format=long"], env=env,
                            capture_output=True, text=True)  # fmt: skip
    assert "rsa3072/" in listed.stdout
    assert ring.read_bytes()[:1] in (b"\x99", b"\xc6")  # an OpenPGP public key packet, not a keybox
    lists = tmp_path / "lists"
    (lists / "partial").mkdir(parents=True)
    (tmp_path / "sources.list").write_text(f"deb [signed-by={ring}] file://{repo}/ /\n")
    r = subprocess.run(
        ["apt-get", "-o", f"Dir::Etc::SourceList={tmp_path / 'sources.list'}", "-o", "Dir::Etc::SourceParts=/none",
         "-o", f"Dir::State::Lists={lists}", "-o", f"Dir::Cache={tmp_path / 'cache'}", "-o", "APT::Sandbox::User=root",
         "update"], capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0 and "E:" not in r.stderr and "NO_PUBKEY" not in r.stderr, r.stderr
