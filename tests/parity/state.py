"""What a machine is, as the parity run compares it: packages with version and hold state,
enabled and active units, sysctls, loaded and persisted modules, the images in containerd's
``k8s.io`` namespace, and the files under /etc, /usr/local, /opt/cni, /usr/bin and
/usr/lib/systemd (mode, type, and the digest of the content or the link target). Config files
whose format is known (TOML, YAML, systemd units and other ``key=value`` files) are compared by
what they mean — their parsed content — not by their bytes (``config_digest``). Read with one
script over the build's own SSH connection (sysprep deletes authorized_keys), parsed and compared
on the host with ``LC_ALL=C`` order."""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import io
import json
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

ROOTS = "/etc /usr/local /opt/cni /usr/bin /usr/lib/systemd"
# Config files read whole (under 64 KiB) and compared parsed.
PARSED = (
    "*.toml", "*.yaml", "*.yml", "/etc/cloud/cloud.cfg.d/*.cfg", "*.service", "*.timer", "*.socket",
    "/etc/systemd/system/*.d/*.conf", "/usr/lib/systemd/system/*.d/*.conf", "/etc/default/*", "/etc/sysctl.conf",
    "/etc/sysctl.d/*.conf", "/etc/modules-load.d/*.conf", "/etc/kubernetes-version", "/etc/apt/sources.list.d/*",
)  # fmt: skip
_FIND_PARSED = " -o ".join(f"-path '{g}'" if g.startswith("/") else f"-name '{g}'" for g in PARSED)

COLLECT = r"""
# Read-only and best effort: a missing file or a failing pipeline must not end the script
# (the build's SSH session runs commands under bash -euo pipefail).
set +e +o pipefail
export LC_ALL=C
echo '=== packages'
dpkg-query -W -f='${Package} ${Version} ${db:Status-Abbrev}
' | awk '$3 ~ /^[ih]i/ {print $1, $2, ($3 ~ /^h/ ? "hold" : "install")}'
# Units from the filesystem and the cgroup tree, not from systemctl: PID 1 stopped answering
# D-Bus calls on a loaded TCG guest after sysprep ("Connection timed out"), and what is enabled
# is the symlinks in /etc anyway; running services are the cgroups with processes.
echo '=== enabled'
find /etc/systemd/system -mindepth 2 -maxdepth 2 -type l \( -path '*.wants/*' -o -path '*.requires/*' \) -printf '%f
' | sort -u
echo '=== active'
for d in /sys/fs/cgroup/system.slice/*.service; do [ -n "$(cat "$d/cgroup.procs" 2>/dev/null)" ] && basename "$d"; done; true
echo '=== sysctl'
sysctl -a 2>/dev/null | sed 's/	/ /g'
echo '=== modules'
awk '{print $1}' /proc/modules
echo '=== modules-persisted'
cat /etc/modules /etc/modules-load.d/*.conf /usr/lib/modules-load.d/*.conf 2>/dev/null | sed 's/#.*//' | awk 'NF {print $1}'
# Accounts as /etc/shadow has them, without the day each was last changed (a run that ends
# after midnight UTC differs there) and without any hash: locked (! or *) or "hash".
echo '=== accounts'
awk -F: '{l = substr($2, 1, 1); if (l != "!" && l != "*") l = ($2 == "" ? "empty" : "hash"); print $1, l, $4, $5, $6, $7, $8}' /etc/shadow
echo '=== images'
ctr -n k8s.io images ls 2>/dev/null | awk 'NR > 1 && $1 !~ /^sha256:/ {print $1, $3}'
echo '=== files'
find ROOTS -xdev \( -type f -o -type l \) -printf '%p	%m	%y	%l
' 2>/dev/null
echo '=== hashes'
find ROOTS -xdev -type f -print0 2>/dev/null | xargs -0 -r sha256sum 2>/dev/null
echo '=== contents'
find ROOTS -xdev -type f -size -64k \( FIND_PARSED \) -print0 2>/dev/null |
  while IFS= read -r -d '' f; do printf '%s	%s
' "$f" "$(base64 -w0 "$f")"; done
echo '=== end'
""".replace("ROOTS", ROOTS).replace("FIND_PARSED", _FIND_PARSED)

KINDS = ("packages", "enabled", "active", "sysctl", "modules", "modules-persisted", "accounts", "images", "files")


@dataclass
class Machine:
    """kind -> item -> value (empty string where only presence matters)."""

    items: dict[str, dict[str, str]] = field(default_factory=lambda: {k: {} for k in KINDS})


def _unit(text: str) -> list[Any]:
    """systemd units and ``key=value`` files (drop-ins, /etc/default, sysctl.conf): the settings
    per section; a key's repeated values keep their order (``ExecStart=`` resets matter), the
    order of different keys does not."""
    section, settings = "", {}  # type: tuple[str, dict[tuple[str, str, str], list[str]]]
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line
            continue
        key, sep, value = line.partition("=")
        if not sep:
            settings.setdefault((section, line, ""), [])
            continue
        settings.setdefault((section, key.strip(), ""), []).append(value.strip().strip('"'))
    return sorted([list(k[:2]), v] for k, v in settings.items())


def _parsed(path: str, data: bytes) -> Any:
    """The meaning of a config file, or None when its format is not one of the known ones."""
    text = data.decode(errors="replace")
    try:
        if path.endswith(".toml"):
            return tomllib.loads(text)
        if path.endswith((".yaml", ".yml", ".cfg")):
            return YAML(typ="safe").load(io.StringIO(text))
    except (tomllib.TOMLDecodeError, YAMLError):
        return None
    return _unit(text)


def config_digest(path: str, data: bytes) -> str:
    """``parsed:<digest>`` of what a config file means (same settings, same digest)."""
    parsed = _parsed(path, data)
    if parsed is None:
        return hashlib.sha256(data).hexdigest()[:16]
    canonical = json.dumps(parsed, sort_keys=True, default=str)
    return "parsed:" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


def parse(output: str) -> Machine:
    m = Machine()
    section, hashes, files, contents = "", {}, {}, {}
    for line in output.splitlines():
        if line.startswith("=== "):
            section = line[4:].strip()
            continue
        if not line.strip():
            continue
        if section == "packages":
            name, _, version = line.partition(" ")
            m.items["packages"][name] = version
        elif section in ("images", "accounts"):
            name, _, value = line.partition(" ")
            m.items[section][name] = value
        elif section in ("enabled", "active", "modules", "modules-persisted"):
            m.items[section][line.strip()] = ""
        elif section == "sysctl":
            key, _, value = line.partition(" = ")
            m.items["sysctl"][key.strip()] = value.strip()
        elif section == "files":
            path, mode, kind, target = [*line.split("\t"), "", "", ""][:4]
            files[path] = (mode, kind, target)
        elif section == "hashes":
            digest, _, path = line.partition("  ")
            hashes[path] = digest[:16]
        elif section == "contents":
            path, _, b64 = line.partition("\t")
            contents[path] = config_digest(path, base64.b64decode(b64))
    for path, (mode, kind, target) in files.items():
        what = f"-> {target}" if kind == "l" else contents.get(path) or hashes.get(path, "unreadable")
        m.items["files"][path] = f"{mode} {what}"
    return m


@dataclass(frozen=True)
class Rule:
    """A known difference: ``kind`` and an fnmatch ``pattern`` on the item, with the reason."""

    kind: str
    pattern: str
    reason: str
    # "upstream": only upstream has it; "ours": only this recipe; "differ": both, with different
    # values; "both": any of these
    side: str = "both"
    # An explanation names one item (``pattern`` is that item); only what is ignored as volatile
    # or test-bed noise may be a pattern.
    exact: bool = True

    def matches(self, kind: str, item: str, side: str) -> bool:
        wanted = "both" if self.side == "differ" else self.side
        found = item == self.pattern if self.exact else fnmatch.fnmatchcase(item, self.pattern)
        return kind == self.kind and found and (self.side == "both" or wanted == side)


@dataclass(frozen=True)
class Difference:
    kind: str
    item: str
    upstream: str | None  # None: absent there
    ours: str | None
    reason: str | None  # None: unexplained

    @property
    def side(self) -> str:
        return "upstream" if self.ours is None else "ours" if self.upstream is None else "both"


def compare(upstream: Machine, ours: Machine, rules: list[Rule], ignore: list[Rule]) -> list[Difference]:
    """Every item that differs and no ``ignore`` rule drops (volatile or test-bed only);
    ``rules`` explain the rest."""
    out: list[Difference] = []
    for kind in KINDS:
        a, b = upstream.items[kind], ours.items[kind]
        for item in sorted(set(a) | set(b)):
            va, vb = a.get(item), b.get(item)
            if va == vb:
                continue
            side = "upstream" if vb is None else "ours" if va is None else "both"
            if any(r.matches(kind, item, side) for r in ignore):
                continue
            reason = next((r.reason for r in rules if r.matches(kind, item, side)), None)
            out.append(Difference(kind, item, va, vb, reason))
    return out


def _cell(value: str | None) -> str:
    if value is None:
        return "—"
    value = value if value else "present"
    return re.sub(r"([|`])", r"\\\1", value)[:60]


def report(differences: list[Difference], header: str) -> str:
    """Markdown: the unexplained differences first (they fail the run), then the explained ones
    grouped by reason."""
    unexplained = [d for d in differences if d.reason is None]
    explained = [d for d in differences if d.reason is not None]
    lines = [header, ""]
    lines.append(f"**{len(unexplained)} unexplained difference(s)**, {len(explained)} explained.")
    lines.append("")
    if unexplained:
        lines += ["## Unexplained", "", "| kind | item | upstream | this recipe |", "| --- | --- | --- | --- |"]
        lines += [f"| {d.kind} | `{d.item}` | {_cell(d.upstream)} | {_cell(d.ours)} |" for d in unexplained]
        lines.append("")
    by_reason: dict[str, list[Difference]] = {}
    for d in explained:
        by_reason.setdefault(d.reason or "", []).append(d)
    if by_reason:
        lines += ["## Explained", ""]
        for reason, ds in by_reason.items():
            lines += [f"### {reason}", "", "| kind | item | upstream | this recipe |", "| --- | --- | --- | --- |"]
            lines += [f"| {d.kind} | `{d.item}` | {_cell(d.upstream)} | {_cell(d.ours)} |" for d in ds[:40]]
            if len(ds) > 40:
                lines.append(f"| … | {len(ds) - 40} more | | |")
            lines.append("")
    return "\n".join(lines) + "\n"
