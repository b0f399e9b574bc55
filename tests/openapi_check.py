"""Validates localcloud's answers against Hetzner's official OpenAPI document.

The document lives in ``../shared/hcloud-openapi/cloud.spec.json`` (reference data, never
copied into this repo). It writes error responses as ``4xx``/``5xx``, which strict OAS 3.0
loaders reject; they are normalised to ``4XX``/``5XX`` in memory when loading.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound
from werkzeug.datastructures import Headers, ImmutableMultiDict

from localcloud.api.app import Exchange

SPEC_PATH = Path(
    os.environ.get("HCLOUD_OPENAPI_SPEC", Path(__file__).resolve().parents[2] / "shared/hcloud-openapi/cloud.spec.json")
)
HOST = "https://api.hetzner.cloud"


def spec_available() -> bool:
    return SPEC_PATH.is_file()


def _normalise(node: Any) -> Any:
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "responses" and isinstance(v, dict):
                out[k] = {code.upper() if code in ("4xx", "5xx") else code: _normalise(r) for code, r in v.items()}
            else:
                out[k] = _normalise(v)
        return out
    if isinstance(node, list):
        return [_normalise(x) for x in node]
    return node


@functools.cache
def openapi() -> OpenAPI:
    return OpenAPI.from_dict(_normalise(json.loads(SPEC_PATH.read_text())))


@dataclass
class _Request:
    method: str
    path: str
    query: str
    host_url: str = HOST
    body: bytes | None = None
    content_type: str = "application/json"

    def __post_init__(self) -> None:
        self.method = self.method.lower()
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(
                [(k, v) for k, vs in parse_qs(self.query, keep_blank_values=True).items() for v in vs]
            )
        )


@dataclass
class _Response:
    status_code: int
    content_type: str
    data: bytes | None
    headers: Headers


def problems(ex: Exchange) -> list[str]:
    """What is wrong with one recorded answer, per the spec (empty when it conforms)."""
    out: list[str] = []
    if ex.injected_bare:
        return out
    where = f"{ex.method} {ex.path}{'?' + ex.query if ex.query else ''} -> {ex.status}"
    if ex.status == 204:
        if ex.body or (ex.content_type or "").startswith("application/json"):
            out.append(f"{where}: 204 must have no body and no JSON content type")
        return out
    if not (ex.content_type or "").startswith("application/json"):
        out.append(f"{where}: content type {ex.content_type!r} is not JSON")
        return out
    body = json.loads(ex.body)
    if ex.status >= 400:
        err = body.get("error") if isinstance(body, dict) else None
        if not isinstance(err, dict) or not isinstance(err.get("code"), str) or not isinstance(err.get("message"), str):
            out.append(f"{where}: error body lacks error.code/error.message: {body}")
    # Pagination: hcloud-python builds Pagination(**meta["pagination"]); extra keys crash it.
    pag = body.get("meta", {}).get("pagination") if isinstance(body, dict) else None
    if pag is not None and set(pag) != {"page", "per_page", "previous_page", "next_page", "last_page", "total_entries"}:
        out.append(f"{where}: pagination keys {sorted(pag)}")
    request = _Request(ex.method, ex.path, ex.query)
    response = _Response(ex.status, ex.content_type or "", ex.body, Headers())
    try:
        openapi().validate_response(request, response)
    except (PathNotFound, OperationNotFound) as e:
        # The spec says nothing about routes it lacks; our 404/405 envelope was checked above.
        if ex.status < 400:
            out.append(f"{where}: answered a route the spec does not have: {e}")
    except Exception as e:  # openapi-core raises a family of validation errors
        detail = (
            "; ".join(str(x) for x in getattr(e, "schema_errors", []) or [])[:1500]
            or getattr(e, "__cause__", None)
            or e
        )
        out.append(f"{where}: {type(e).__name__}: {detail}")
    return out
