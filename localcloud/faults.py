"""Fault rules: make chosen API calls fail the way the real cloud (or the network) can.

A rule matches a method and a path regex (searched in the path, e.g. ``/v1/servers$``); it
fires on the ``nth`` matching call (1-based) and on ``times`` calls from there (0 = forever).
Kinds:
- ``error``: answer ``status`` with error ``code`` instead of handling the call;
- ``drop``: close the connection without an answer, the call is not handled;
- ``drop_after``: handle the call, then close the connection before the answer is sent
  (the client cannot know whether it took effect);
- ``action_error``: handle the call, but every action it creates ends in ``error`` (with
  ``effect``, the work is still done: the action lies, as real ones occasionally do);
- ``delay``: handle the call after ``seconds`` (a slow API).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .errors import STATUS_BY_CODE

FaultKind = Literal["error", "drop", "drop_after", "action_error", "delay", "delay_answer"]


class FaultSpec(BaseModel):
    """The admin API's request body for a new fault rule."""

    model_config = ConfigDict(extra="forbid")

    method: str = "*"
    path: str
    nth: int = Field(default=1, ge=1)
    times: int = Field(default=1, ge=0)
    kind: FaultKind = "error"
    status: int | None = Field(default=None, ge=400, le=599)
    code: str = "server_error"
    message: str | None = None
    bare: bool = False  # error without a JSON body (e.g. a proxy's plain 429/503)
    # kind "delay": the request is carried out after ``seconds`` (even if the client has gone);
    # kind "delay_answer": carried out at once, answered after ``seconds``.
    seconds: float = Field(default=1.0, ge=0, le=600)
    effect: bool = False  # for kind "action_error": the work is done anyway, only the action errs

    @field_validator("path")
    @classmethod
    def _regex(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as e:  # pydantic turns ValueError into a validation error
            raise ValueError(f"path is not a regular expression: {e}") from e
        return v


@dataclass
class FaultRule:
    id: int
    spec: FaultSpec
    seen: int = 0  # matching calls so far
    fired: int = 0
    pattern: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        self.pattern = re.compile(self.spec.path)

    @property
    def status(self) -> int:
        return self.spec.status or STATUS_BY_CODE.get(self.spec.code, 500)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, **self.spec.model_dump(), "status": self.status, "seen": self.seen, "fired": self.fired}


class FaultRegistry:
    def __init__(self) -> None:
        self.rules: list[FaultRule] = []
        self._ids = itertools.count(1)

    def add(self, spec: FaultSpec) -> FaultRule:
        rule = FaultRule(next(self._ids), spec)
        self.rules.append(rule)
        return rule

    def remove(self, rule_id: int) -> bool:
        before = len(self.rules)
        self.rules = [r for r in self.rules if r.id != rule_id]
        return len(self.rules) != before

    def clear(self) -> None:
        self.rules.clear()

    def match(self, method: str, path: str) -> FaultRule | None:
        """Count this call against every matching rule; return the first that fires."""
        chosen = None
        for rule in self.rules:
            if rule.spec.method not in ("*", method) or not rule.pattern.search(path):
                continue
            rule.seen += 1
            active = rule.seen >= rule.spec.nth and (rule.spec.times == 0 or rule.fired < rule.spec.times)
            if active and chosen is None:
                rule.fired += 1
                chosen = rule
        return chosen
