"""Where a build server may run: the project's server types x locations, in order, minus what
Hetzner says is gone or unavailable there — and the next one when creating a server meets no
capacity.

Snapshots are project-wide, so a build may run in any location: a project lists
``fallback_locations`` (and ``fallback_server_types`` of the same architecture) to move on to
when ``POST /servers`` answers ``resource_unavailable`` or ``placement_error``. Deprecation comes
from ``server_types[].locations[].deprecation`` (Hetzner's current API): past
``unavailable_after`` excludes the pair in preflight, naming the date; a deprecation only
announced is a warning; ``available: false`` (temporarily unavailable) is skipped.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from .errors import InputError

# What POST /servers answers when a location has no room for a type (OpenAPI: 412, 422).
CAPACITY_CODES = frozenset({"resource_unavailable", "placement_error"})


@dataclass(frozen=True)
class Candidate:
    server_type: str
    location: str

    def __str__(self) -> str:
        return f"{self.server_type} in {self.location}"


@dataclass
class Placements:
    """The candidates in order; what was left out and why; warnings for the log and manifest."""

    candidates: list[Candidate]
    excluded: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    tried: list[dict[str, str]] = field(default_factory=list)  # refused creates, in order
    index: int = 0  # of the candidate the next create uses

    @property
    def current(self) -> Candidate:
        return self.candidates[self.index]

    def refused(self, candidate: Candidate, code: str, message: str) -> Candidate | None:
        """Record a refused create; move on to the next candidate and return it, or None when
        none is left."""
        self.tried.append(
            {"server_type": candidate.server_type, "location": candidate.location, "error": f"{code}: {message}"}
        )
        i = self.candidates.index(candidate)
        if i + 1 >= len(self.candidates):
            return None
        self.index = i + 1
        return self.current


class NoPlacementError(InputError):
    """No server type x location of the project can take the build (said before any cost)."""


def _date(value: Any) -> str:
    return value.strftime("%Y-%m-%d") if isinstance(value, dt.datetime) else str(value)


def plan(
    types: list[Any],
    locations: list[str],
    architecture: str,
    *,
    now: dt.datetime,
) -> Placements:
    """``types``: the SDK's bound server types in the project's order (primary first), all
    found; ``locations``: primary first. Fallback types of another architecture than the
    primary's are left out (a snapshot is per architecture)."""
    out = Placements(candidates=[])
    for st in types:
        if st.architecture != architecture:
            out.excluded.append(f"{st.name}: architecture {st.architecture}, the build is {architecture}")
            continue
        by_location = {entry.location.name: entry for entry in (st.locations or [])}
        offered = set(by_location) or {p["location"] for p in (st.prices or [])}
        for loc in locations:
            c = Candidate(st.name, loc)
            if loc not in offered:
                out.excluded.append(f"{c}: not offered there (only {', '.join(sorted(offered))})")
                continue
            entry = by_location.get(loc)
            deprecation = getattr(entry, "deprecation", None)
            if deprecation is not None:
                gone = deprecation.unavailable_after
                if gone is not None and gone <= now:
                    out.excluded.append(f"{c}: deprecated, unavailable since {_date(gone)}")
                    continue
                out.warnings.append(
                    f"{c}: deprecation announced {_date(deprecation.announced)}, unavailable after {_date(gone)}"
                )
            if entry is not None and entry.available is False:
                out.excluded.append(f"{c}: temporarily unavailable")
                continue
            out.candidates.append(c)
    if not out.candidates:
        raise NoPlacementError("no server type and location can take the build: " + "; ".join(out.excluded))
    return out
