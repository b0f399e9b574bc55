"""Several plan operations as one SSH command: the script and the reading of its output.

Every command a build server runs costs a round trip: a new SSH channel, a session process, a
shell — 0.3-1 s on a slow build server, and verify alone is eighty checks. Consecutive commands
of a step run as one script instead. Each command still runs in its own ``bash -euo
pipefail``, exactly as it would alone; the script prints a marker line (a random boundary, never
logged) after each one, so the executor knows which command failed, and, for checks, each
check's own output and exit code.
"""

from __future__ import annotations

import secrets
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from provision.plan import Check, Operation, Run

BASH = "bash --norc --noprofile -euo pipefail -c"


def boundary() -> str:
    return f"::capi-image-{secrets.token_hex(8)}::"


def runs_script(commands: list[str], mark: str) -> str:
    """Run the commands in order; stop at the first that fails, name it, and exit with its code."""
    return "\n".join(
        f"{BASH} {shlex.quote(c)} || {{ rc=$?; echo '{mark} failed {i} '$rc; exit $rc; }}"
        for i, c in enumerate(commands)
    )


def failed_index(stdout: str, mark: str) -> int | None:
    """Which command of ``runs_script`` failed (None: none said so — the link dropped)."""
    for line in stdout.splitlines():
        if line.startswith(f"{mark} failed "):
            return int(line.split()[2])
    return None


def checks_script(commands: list[str], mark: str) -> str:
    """Run every check (read-only) whatever the others do; after each, a newline and a marker
    with its index and exit code (its output is the text since the previous marker)."""
    return "\n".join(
        f"rc=0; {BASH} {shlex.quote(c)} || rc=$?; echo; echo '{mark} '{i}' '$rc" for i, c in enumerate(commands)
    )


@dataclass(frozen=True)
class CheckResult:
    exit_code: int
    output: str


def check_results(stdout: str, mark: str, count: int) -> list[CheckResult | None]:
    """Each check's exit code and output from ``checks_script``'s stdout; None where the script
    never got to a check (the link dropped)."""
    results: list[CheckResult | None] = [None] * count
    chunk: list[str] = []
    for line in stdout.splitlines():
        if line.startswith(f"{mark} "):
            _, index, code = line.split()
            results[int(index)] = CheckResult(int(code), "\n".join(chunk))
            chunk = []
        else:
            chunk.append(line)
    return results


def groups(operations: Sequence[Operation]) -> list[list[Operation]]:
    """The operations as SSH commands: each file write alone (its content goes over stdin),
    consecutive checks together, consecutive commands together while their environment and kind
    agree (the environment is exported once; a kind's seconds are its batch's)."""
    out: list[list[Operation]] = []
    for op in operations:
        last = out[-1][-1] if out else None
        same = (isinstance(op, Check) and isinstance(last, Check)) or (
            isinstance(op, Run) and isinstance(last, Run) and (op.env, op.kind) == (last.env, last.kind)
        )
        if same:
            out[-1].append(op)
        else:
            out.append([op])
    return out
