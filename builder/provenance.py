"""The build's provenance: an in-toto Statement (v1) with a SLSA provenance v1 predicate, in a
DSSE envelope (securesystemslib, in-toto's own library) — signed with the project's key when it
names one (``provenance_key``: a PEM private key, ed25519, ECDSA or RSA; no network involved),
else with no signature.

Subject: the snapshot's SBOM document (its sha256; the snapshot's ``sbom-sha256`` label leads to
it). Inputs: the base image (id and name), the var file's digest, the digest of the plan that ran
(every command, file and check; environment values left out: they may be secrets), every
release download with its pinned or published checksum, the tool's version. Written beside the
build manifest as ``build-<id>.intoto.jsonl``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.dsse import Envelope
from securesystemslib.signer import CryptoSigner  # type: ignore[attr-defined]  # re-exported, not in __all__

from provision.plan import Check, Plan, Put, Run
from provision.steps.common import fetches

from .errors import InputError

STATEMENT = "https://in-toto.io/Statement/v1"
SLSA = "https://slsa.dev/provenance/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
BUILD_TYPE = "https://github.com/capi-image/build/v1"


def plan_digest(plan: Plan) -> str:
    """sha256 over the plan as it ran: commands (with the names of their environment, not the
    values), files (path, mode, content digest), checks."""
    ops: list[Any] = []
    for step in plan.steps:
        for op in step.operations:
            if isinstance(op, Run):
                ops.append([step.name, "run", op.command, sorted(op.env)])
            elif isinstance(op, Put):
                ops.append([step.name, "file", op.path, op.mode, hashlib.sha256(op.content).hexdigest()])
            elif isinstance(op, Check):
                ops.append([step.name, "check", op.name, op.command, op.expect, op.value])
    return hashlib.sha256(json.dumps(ops, separators=(",", ":")).encode()).hexdigest()


def _downloads(plan: Plan) -> list[dict[str, Any]]:
    found = []
    for f in fetches(plan):
        entry: dict[str, Any] = {"uri": f.url}
        if len(f.checksum) == 64:
            entry["digest"] = {"sha256": f.checksum}
        elif f.checksum.startswith("@"):
            entry["annotations"] = {"checksum_file": f.checksum[1:]}
        found.append(entry)
    return found


def statement(
    *,
    subject_name: str,
    subject_sha256: str,
    image: dict[str, Any],
    base_image: dict[str, Any],
    var_file: Path,
    plan: Plan,
    project: dict[str, Any],
    builder_id: str,
    build_id: str,
    started: dt.datetime,
    finished: dt.datetime,
) -> dict[str, Any]:
    return {
        "_type": STATEMENT,
        "subject": [{"name": subject_name, "digest": {"sha256": subject_sha256}, "annotations": image}],
        "predicateType": SLSA,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": project,
                "internalParameters": {"plan_sha256": plan_digest(plan)},
                "resolvedDependencies": [
                    {"uri": f"hcloud:image/{base_image['id']}", "name": str(base_image["name"])},
                    {
                        "uri": f"file:{var_file.name}",
                        "digest": {"sha256": hashlib.sha256(var_file.read_bytes()).hexdigest()},
                    },
                    *_downloads(plan),
                ],
            },
            "runDetails": {
                "builder": {"id": builder_id},
                "metadata": {
                    "invocationId": build_id,
                    "startedOn": started.isoformat().replace("+00:00", "Z"),
                    "finishedOn": finished.isoformat().replace("+00:00", "Z"),
                },
            },
        },
    }


def signer(key: Path) -> CryptoSigner:
    """The project's signing key, loaded (preflight calls this: a bad key is found before any cost)."""
    try:
        return CryptoSigner(load_pem_private_key(key.read_bytes(), password=None))
    except (OSError, ValueError, TypeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else e
        raise InputError(f"provenance_key {key} is not an unencrypted PEM private key ({reason})") from e


def envelope(doc: dict[str, Any], key: Path | None) -> dict[str, Any]:
    """The statement in a DSSE envelope, signed with ``key`` when given."""
    env = Envelope(json.dumps(doc, sort_keys=True).encode(), PAYLOAD_TYPE, {})
    if key is not None:
        env.sign(signer(key))
    return env.to_dict()


def payload(envelope_dict: dict[str, Any]) -> dict[str, Any]:
    """The statement inside an envelope."""
    return json.loads(base64.b64decode(envelope_dict["payload"]))  # type: ignore[no-any-return]


def provenance_path(manifest: Path) -> Path:
    return manifest.with_name(manifest.stem + ".intoto.jsonl")
