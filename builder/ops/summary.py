"""``capi-image summary``: a Markdown report of build manifests or a matrix summary, for a CI
job summary (``>> $GITHUB_STEP_SUMMARY``): the new image names and the manifests snippet."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..caph import CAPH_LABEL
from ..errors import InputError


class SummaryError(InputError):
    """A build manifest or matrix summary that cannot be reported on."""


def _builds(doc: dict[str, Any], path: Path) -> list[dict[str, Any]]:
    if "builds" in doc:  # a matrix summary
        return [
            {
                "variant": b.get("variant"),
                "status": b.get("status"),
                "snapshot_id": b.get("snapshot_id"),
                "name": b.get(CAPH_LABEL),
                "error": b.get("error"),
                "seconds": b.get("seconds"),
            }
            for b in doc["builds"]
        ]
    if "build_id" in doc and "result" in doc:  # one build manifest
        return [
            {
                "variant": f"{doc.get('os')}/{doc.get('architecture')}/k8s-{(doc.get('versions') or {}).get('kubernetes_semver')}",
                "status": "published" if doc["result"] == "success" else "failed",
                "snapshot_id": doc.get("snapshot_id"),
                "name": doc.get("caph_image_name"),
                "error": doc.get("error"),
                "seconds": round(sum((doc.get("phases") or {}).values()), 1),
                "server_type": doc.get("server_type"),
            }
        ]
    raise SummaryError(f"{path} is neither a build manifest nor a matrix summary")


def markdown(paths: list[Path], *, title: str = "Node images") -> str:
    rows: list[dict[str, Any]] = []
    for p in paths:
        try:
            doc = json.loads(p.read_text())
        except (OSError, ValueError) as e:
            raise SummaryError(f"cannot read {p}: {e}") from e
        rows += _builds(doc, p)
    out = [
        f"## {title}",
        "",
        "| image | status | caph-image-name | snapshot | minutes |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        minutes = f"{(r['seconds'] or 0) / 60:.1f}"
        name = f"`{r['name']}`" if r["name"] else ""
        out.append(f"| {r['variant']} | {r['status']} | {name} | {r['snapshot_id'] or ''} | {minutes} |")
    failed = [r for r in rows if r["status"] != "published"]
    for r in failed:
        out += ["", f"**{r['variant']}** {r['status']}: {r['error'] or 'no error recorded'}"]
    published = [r for r in rows if r["status"] == "published"]
    if published:
        out += [
            "",
            "### Roll out",
            "",
            "New `HCloudMachineTemplate`s (one per role; names are examples):",
            "",
            "```yaml",
        ]
        for r in published:
            out += [
                "---",
                "apiVersion: infrastructure.cluster.x-k8s.io/v1beta1",
                "kind: HCloudMachineTemplate",
                "metadata:",
                f"  name: <cluster>-md-0-{r['name']}",
                "spec:",
                "  template:",
                "    spec:",
                f"      imageName: {r['name']}",
                f"      type: {r.get('server_type') or '<server type>'}",
            ]
        out += ["```", ""]
        out += [f"- `{r['name']}`: `HCLOUD_IMAGE={r['snapshot_id']}` for cluster-autoscaler" for r in published]
        out += [
            "",
            "Update a cluster's manifests in place: "
            "`capi-image manifests --from <build manifest> --cluster <dir>` (see docs/rollout.md).",
        ]
    return "\n".join(out) + "\n"
