"""Query parsing shared by list endpoints: filters, sorting and pagination."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlencode

from starlette.requests import Request

from ..errors import invalid_input
from ..labels import parse_selector, selector_matches

T = TypeVar("T")


INT64_MAX = 2**63 - 1
# A query longer than this is refused rather than echoed into the Link header (clients reading
# headers fail on lines of ~64 KiB).
MAX_QUERY = 8192


def int_param(request: Request, name: str, default: int | None = None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if len(raw) > 20:
        raise invalid_input(name, "must be an integer of at most 64 bits")
    try:
        value = int(raw)
    except ValueError as e:
        raise invalid_input(name, "must be an integer") from e
    if not -INT64_MAX - 1 <= value <= INT64_MAX:
        raise invalid_input(name, "must be an integer of at most 64 bits")
    return value


def enum_params(request: Request, name: str, allowed: Sequence[str]) -> list[str]:
    values = request.query_params.getlist(name)
    for v in values:
        if v not in allowed:
            raise invalid_input(name, f"'{v}' is not one of {', '.join(allowed)}")
    return values


def by_labels(request: Request, items: list[T], labels_of: Callable[[T], dict[str, str]]) -> list[T]:
    selector = request.query_params.get("label_selector")
    if not selector:
        return items
    reqs = parse_selector(selector)
    return [i for i in items if selector_matches(reqs, labels_of(i))]


def sort_items(request: Request, items: list[T], keys: dict[str, Callable[[T], Any]]) -> list[T]:
    """Apply ``sort=field[:asc|:desc]`` (repeatable); the first one given is the primary key."""
    specs = request.query_params.getlist("sort")
    out = sorted(items, key=keys["id"])
    for spec in reversed(specs):
        field, _, direction = spec.partition(":")
        if field not in keys or direction not in ("", "asc", "desc"):
            allowed = ", ".join(f"{k}, {k}:asc, {k}:desc" for k in keys)
            raise invalid_input("sort", f"'{spec}' is not one of {allowed}")
        out = sorted(out, key=keys[field], reverse=direction == "desc")
    return out


def paginate(request: Request, items: list[Any]) -> tuple[list[Any], dict[str, Any], dict[str, str]]:
    """One page of ``items``, the ``meta`` object (exactly six keys) and a ``Link`` header."""
    if len(request.url.query) > MAX_QUERY:
        raise invalid_input("query", f"is longer than {MAX_QUERY} bytes")
    page = int_param(request, "page", 1)
    per_page = int_param(request, "per_page", 25)
    assert page is not None and per_page is not None
    if page < 1:
        raise invalid_input("page", "must be at least 1")
    if per_page < 1:
        raise invalid_input("per_page", "must be at least 1")
    per_page = min(per_page, 50)
    total = len(items)
    last = max(1, math.ceil(total / per_page))
    chunk = items[(page - 1) * per_page : page * per_page]
    meta = {
        "pagination": {
            "page": page,
            "per_page": per_page,
            "previous_page": page - 1 if page > 1 else None,
            "next_page": page + 1 if page < last else None,
            "last_page": last,
            "total_entries": total,
        }
    }
    links = []
    base = str(request.url.remove_query_params(["page"]))
    sep = "&" if "?" in base else "?"
    for rel, target in (
        ("prev", meta["pagination"]["previous_page"]),
        ("next", meta["pagination"]["next_page"]),
        ("last", last),
    ):
        if target is not None:
            links.append(f'<{base}{sep}{urlencode({"page": target})}>; rel="{rel}"')
    return chunk, {"meta": meta}, ({"Link": ", ".join(links)} if links else {})
