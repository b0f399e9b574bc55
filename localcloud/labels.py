"""Label validation and label selectors, as the Hetzner API defines them.

Keys: an optional DNS-subdomain prefix and ``/``, then a name of at most 63 characters that
starts and ends alphanumeric with ``-_.`` allowed between. Values: at most 63 characters, empty
or of the same shape as a name. Selectors: comma-separated expressions, all of which must hold.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from hcloud.helpers.labels import LabelValidator

from .errors import APIError, invalid_input

_PREFIX = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")


def label_key_problem(key: str) -> str | None:
    """Why ``key`` is not a valid label key, or None: the SDK's rule (``LabelValidator``, which
    the builder applies before any call, so client and emulator agree), then what the API
    documents beyond it — a prefix is a DNS subdomain, lowercase."""
    prefix, sep, name = key.rpartition("/")
    if sep and (not prefix or len(prefix) > 253 or not _PREFIX.match(prefix)):
        return f"label key '{key}' has an invalid prefix"
    if not name:
        return f"label key '{key}' has an empty name"
    if len(name) > 63:
        return f"label key '{key}' is longer than 63 characters"
    if not LabelValidator.KEY_REGEX.match(key):
        return f"label key '{key}' must start and end alphanumeric and contain only [a-zA-Z0-9-_.]"
    return None


def label_value_problem(key: str, value: object) -> str | None:
    """Why ``value`` is not a valid value for label ``key``, or None."""
    if not isinstance(value, str):
        return f"label value for '{key}' must be a string"
    if len(value) > 63:
        return f"label value for '{key}' is longer than 63 characters"
    if not LabelValidator.VALUE_REGEX.match(value):
        return f"label value '{value}' for '{key}' must start and end alphanumeric and contain only [a-zA-Z0-9-_.]"
    return None


def validate_labels(labels: object, field: str = "labels") -> dict[str, str]:
    if labels is None:
        return {}
    if not isinstance(labels, dict):
        raise invalid_input(field, "must be an object")
    for key, value in labels.items():
        problem = label_key_problem(key) or label_value_problem(key, value)
        if problem:
            raise invalid_input(field, problem)
    return dict(labels)


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "exists", "!exists", "in", "notin"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        if self.op == "=":
            return present and labels[self.key] == self.values[0]
        if self.op == "!=":
            return not present or labels[self.key] != self.values[0]
        if self.op == "in":
            return present and labels[self.key] in self.values
        return not present or labels[self.key] not in self.values  # notin


_SET_EXPR = re.compile(r"^\s*(\S+)\s+(in|notin)\s*\(([^()]*)\)\s*$")
_EQ_EXPR = re.compile(r"^\s*([^=!\s]+)\s*(==|=|!=)\s*([^=!\s]*)\s*$")
_EXISTS_EXPR = re.compile(r"^\s*(!?)\s*([^=!\s(),]+)\s*$")


def _split_top_level(selector: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def parse_selector(selector: str) -> list[Requirement]:
    """Parse a label selector; raise ``invalid_input`` naming ``label_selector`` if malformed."""

    def bad(why: str) -> APIError:
        return invalid_input("label_selector", f"invalid label selector '{selector}': {why}")

    if selector.count("(") != selector.count(")"):
        raise bad("unbalanced parentheses")
    reqs: list[Requirement] = []
    for expr in _split_top_level(selector):
        if not expr.strip():
            raise bad("empty expression")
        if m := _SET_EXPR.match(expr):
            values = tuple(v.strip() for v in m.group(3).split(","))
            if not all(values):
                raise bad(f"empty value in '{expr.strip()}'")
            reqs.append(Requirement(m.group(1), m.group(2), values))
        elif m := _EQ_EXPR.match(expr):
            op = "!=" if m.group(2) == "!=" else "="
            reqs.append(Requirement(m.group(1), op, (m.group(3),)))
        elif m := _EXISTS_EXPR.match(expr):
            reqs.append(Requirement(m.group(2), "!exists" if m.group(1) else "exists"))
        else:
            raise bad(f"cannot parse '{expr.strip()}'")
        problem = label_key_problem(reqs[-1].key)
        if problem:
            raise bad(problem)
    return reqs


def selector_matches(reqs: list[Requirement], labels: Mapping[str, str]) -> bool:
    return all(r.matches(labels) for r in reqs)
