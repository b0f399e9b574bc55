"""A read-only OCI distribution endpoint in front of the mirror's images (``localcloud.ociimages``).

Served at ``/__localcloud/mirror/files/registry/v2/``, laid out as a Harbor proxy cache lays out
its projects: ``/v2/proxy-<registry>/<name>/manifests/<ref>`` and ``.../blobs/<digest>``. A VM's
containerd reaches it through the ``hosts.toml`` the recipe writes (``override_path = true``), so
every pre-pull really travels through the mirror; the pull log (``GET
/__localcloud/mirror/registry-log``, and ``registry-pulls.jsonl`` in the state directory, which
outlives the process) shows each request and its answer. Only the projects named
``proxy-<registry>`` (the default ``project_pattern``) exist.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

if TYPE_CHECKING:
    from .app import AppState

_MANIFEST = re.compile(r"^proxy-(?P<registry>[^/]+)/(?P<name>.+)/manifests/(?P<ref>[^/]+)$")
_BLOB = re.compile(r"^proxy-(?P<registry>[^/]+)/(?P<name>.+)/blobs/(?P<digest>sha256:[0-9a-f]{64})$")


@dataclass(frozen=True)
class Pull:
    at: float
    method: str
    path: str
    status: int

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at, "method": self.method, "path": self.path, "status": self.status}


def _state(request: Request) -> AppState:
    return request.app.state.localcloud  # type: ignore[no-any-return]


def _error(status: int, code: str, message: str) -> JSONResponse:
    # The distribution spec's error body.
    return JSONResponse({"errors": [{"code": code, "message": message}]}, status)


def _blob_response(root: Path, digest: str, media_type: str, head: bool) -> Response:
    path = root / "blobs" / "sha256" / digest.removeprefix("sha256:")
    if not path.is_file():
        return _error(404, "BLOB_UNKNOWN", f"{digest} is not in the mirror")
    data = path.read_bytes()
    headers = {"Docker-Content-Digest": digest, "Content-Length": str(len(data))}
    return Response(b"" if head else data, media_type=media_type, headers=headers)


def _answer(request: Request) -> Response:
    root = _state(request).mirror_root / "registry"
    rest = request.path_params["rest"]
    head = request.method == "HEAD"
    if rest == "":
        return JSONResponse({})  # the API version check
    if (m := _MANIFEST.match(rest)) is not None:
        try:
            index: dict[str, dict[str, Any]] = json.loads((root / "index.json").read_text())
        except (OSError, ValueError):
            return _error(404, "NAME_UNKNOWN", "the mirror holds no images (run: make artifacts)")
        ref = m["ref"]
        if ref.startswith("sha256:"):
            found = next((d for d in index.values() if d["digest"] == ref), None)
        else:
            found = index.get(f"{m['registry']}/{m['name']}:{ref}")
        if found is None:
            return _error(404, "MANIFEST_UNKNOWN", f"{m['registry']}/{m['name']}:{ref} is not in the mirror")
        return _blob_response(root, str(found["digest"]), str(found["mediaType"]), head)
    if (m := _BLOB.match(rest)) is not None:
        return _blob_response(root, m["digest"], "application/octet-stream", head)
    return _error(404, "NAME_UNKNOWN", f"no such repository or route: /v2/{rest}")


PULL_LOG = "registry-pulls.jsonl"


async def registry(request: Request) -> Response:
    response = _answer(request)
    st = _state(request)
    pull = Pull(time.time(), request.method, f"/v2/{request.path_params['rest']}", response.status_code)
    st.pulls.append(pull)
    if st.backend.state_dir is not None:
        with open(st.backend.state_dir / PULL_LOG, "a") as f:
            f.write(json.dumps(pull.to_json()) + "\n")
    return response


async def pull_log(request: Request) -> Response:
    return JSONResponse({"pulls": [p.to_json() for p in _state(request).pulls]})


REGISTRY_ROUTES = [
    Route("/mirror/files/registry/v2/{rest:path}", registry, methods=["GET", "HEAD"]),
    Route("/mirror/registry-log", pull_log, methods=["GET"]),
]
