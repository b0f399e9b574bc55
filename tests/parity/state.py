"""What a machine is, as the parity run compares it: packages and versions, enabled and active
units, sysctls, loaded and persisted modules, and the files under /etc, /usr/local and /opt/cni
(mode, type, sha256 or link target). Read with one script over the build's own SSH connection
(sysprep deletes authorized_keys), parsed and compared on the host with ``LC_ALL=C`` order."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field

COLLECT = r"""
# Read-only and best effort: a missing file or a failing pipeline must not end the script
# (the build's SSH session runs commands under bash -euo pipefail).
set +e +o pipefail
export LC_ALL=C
echo '=== packages'
dpkg-query -W -f='${Package} ${Version} ${db:Status-Abbrev}\n' | awk '$3 ~ /^[ih]i/ {print $1, $2}'
# Units from the filesystem and the cgroup tree, not from systemctl: PID 1 stopped answering
# D-Bus calls on a loaded TCG guest after sysprep ("Connection timed out"), and what is enabled
# is the symlinks in /etc anyway; running services are the cgroups with processes.
echo '=== enabled'
find /etc/systemd/system -mindepth 2 -maxdepth 2 -type l \( -path '*.wants/*' -o -path '*.requires/*' \) -printf '%f\n' | sort -u
echo '=== active'
for d in /sys/fs/cgroup/system.slice/*.service; do [ -n "$(cat "$d/cgroup.procs" 2>/dev/null)" ] && basename "$d"; done; true
echo '=== sysctl'
sysctl -a 2>/dev/null | sed 's/\t/ /g'
echo '=== modules'
awk '{print $1}' /proc/modules
echo '=== modules-persisted'
cat /etc/modules /etc/modules-load.d/*.conf /usr/lib/modules-load.d/*.conf 2>/dev/null | sed 's/#.*//' | awk 'NF {print $1}'
echo '=== files'
find /etc /usr/local /opt/cni -xdev \( -type f -o -type l \) -printf '%p\t%m\t%y\t%l\n' 2>/dev/null
echo '=== hashes'
find /etc /usr/local /opt/cni -xdev -type f -print0 2>/dev/null | xargs -0 -r sha256sum 2>/dev/null
echo '=== end'
"""

KINDS = ("packages", "enabled", "active", "sysctl", "modules", "modules-persisted", "files")


@dataclass
class Machine:
    """kind -> item -> value (empty string where only presence matters)."""

    items: dict[str, dict[str, str]] = field(default_factory=lambda: {k: {} for k in KINDS})


def parse(output: str) -> Machine:
    m = Machine()
    section, hashes, files = "", {}, {}
    for line in output.splitlines():
        if line.startswith("=== "):
            section = line[4:].strip()
            continue
        if not line.strip():
            continue
        if section == "packages":
            name, _, version = line.partition(" ")
            m.items["packages"][name] = version
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
    for path, (mode, kind, target) in files.items():
        what = f"-> {target}" if kind == "l" else hashes.get(path, "unreadable")
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

    def matches(self, kind: str, item: str, side: str) -> bool:
        wanted = "both" if self.side == "differ" else self.side
        return kind == self.kind and fnmatch.fnmatchcase(item, self.pattern) and (self.side == "both" or wanted == side)


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
