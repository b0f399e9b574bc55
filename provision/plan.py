"""A provision plan: named steps of shell commands and files, rendered from config.

Rendering is pure (no I/O, no network) so every step is unit-testable; the builder's executor
runs a plan over SSH. Commands run as root with ``bash -euo pipefail``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union


@dataclass(frozen=True)
class Run:
    """A shell command. ``env`` is exported for it (values are never logged)."""

    command: str
    env: dict[str, str] = field(default_factory=dict)
    sensitive_env: bool = False


@dataclass(frozen=True)
class Put:
    """A file written atomically with the given mode (created directories: 0755)."""

    path: str
    content: bytes
    mode: int = 0o644

    @property
    def text(self) -> str:
        return self.content.decode()


Operation = Union[Run, Put]  # noqa: UP007 - a runtime alias


@dataclass(frozen=True)
class Step:
    name: str
    description: str
    operations: tuple[Operation, ...]

    def commands(self) -> list[str]:
        return [op.command for op in self.operations if isinstance(op, Run)]

    def files(self) -> dict[str, Put]:
        return {op.path: op for op in self.operations if isinstance(op, Put)}


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
