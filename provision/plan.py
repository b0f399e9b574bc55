"""A provision plan: named steps of shell commands and files, rendered from config.

Rendering is pure (no I/O, no network) so every step is unit-testable; the builder's executor
runs a plan over SSH. Commands run as root with ``bash -euo pipefail``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Union

KINDS = ("apt", "initramfs", "download")
# Output lines the executor counts per step, for the manifest: the tools' own words.
COUNTED_OUTPUT = {"initramfs_generations": re.compile(r"^update-initramfs: Generating ")}


@dataclass(frozen=True)
class Run:
    """A shell command. ``env`` is exported for it (values are never logged). ``kind`` names
    where its time goes (one of ``KINDS``), so a build's manifest shows the seconds per step
    spent in apt/dpkg, initramfs generation and downloads."""

    command: str
    env: dict[str, str] = field(default_factory=dict)
    kind: str = ""

    def __post_init__(self) -> None:
        if self.kind and self.kind not in KINDS:
            raise ValueError(f"unknown kind {self.kind!r}; known: {', '.join(KINDS)}")


@dataclass(frozen=True)
class Put:
    """A file written atomically with the given mode (created directories: 0755)."""

    path: str
    content: bytes
    mode: int = 0o644

    @property
    def text(self) -> str:
        return self.content.decode()


@dataclass(frozen=True)
class Check:
    """A read-only verification: run ``command`` and judge its exit code and output.

    ``expect``: ``exit0`` (exit code 0), ``equals`` (stripped output == value), ``regex``
    (output matches value), ``empty`` (no output), ``at_most`` (output is a number <= value),
    ``lines`` (the set of output lines == the comma-separated value), ``differs`` (non-empty and
    != value).
    """

    name: str
    command: str
    expect: str = "exit0"
    value: str = ""

    def judge(self, exit_code: int, output: str) -> str | None:
        """Why the check failed, or None."""
        out = output.strip()
        if self.expect == "exit0":
            return None if exit_code == 0 else f"exit code {exit_code}"
        if exit_code != 0 and self.expect != "empty":
            return f"exit code {exit_code}, output {out[:200]!r}"
        if self.expect == "equals":
            return None if out == self.value else f"got {out[:200]!r}, want {self.value!r}"
        if self.expect == "regex":
            return None if re.search(self.value, out) else f"got {out[:200]!r}, want /{self.value}/"
        if self.expect == "empty":
            return None if not out else f"expected nothing, got {out[:200]!r}"
        if self.expect == "at_most":
            try:
                return None if float(out.split()[0]) <= float(self.value) else f"{out} > {self.value}"
            except (ValueError, IndexError):
                return f"not a number: {out[:200]!r}"
        if self.expect == "differs":
            return None if out and out != self.value else f"got {out[:200]!r}, which must be non-empty and differ"
        if self.expect == "lines":
            got, want = set(out.splitlines()), set(self.value.split(","))
            return None if got == want else f"got {sorted(got)}, want {sorted(want)}"
        return f"unknown expectation {self.expect}"


Operation = Union[Run, Put, Check]  # noqa: UP007 - a runtime alias


@dataclass(frozen=True)
class Step:
    name: str
    description: str
    operations: tuple[Operation, ...]

    def commands(self) -> list[str]:
        return [op.command for op in self.operations if isinstance(op, Run)]

    def files(self) -> dict[str, Put]:
        return {op.path: op for op in self.operations if isinstance(op, Put)}

    def checks(self) -> list[Check]:
        return [op for op in self.operations if isinstance(op, Check)]


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]

    def step(self, name: str) -> Step:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.steps]
