"""What ``capi-image -h`` and each command's help say: plain text for a terminal (click rewraps
paragraphs; a paragraph starting with ``\\b`` keeps its lines), a one-line summary, examples."""

from __future__ import annotations

from typing import Any

APP = """Build Cluster API node images for Hetzner Cloud over the Hetzner API and roll them into
CAPH clusters.

Token: $HCLOUD_TOKEN (or the project's token_env), else the hcloud CLI's active context.
Endpoint: $HCLOUD_ENDPOINT, else the project's endpoint, else Hetzner.

Exit codes: 0 success; 1 failed (what it created was cleaned up); 2 bad input or credentials,
found before anything was created; 3 cleanup incomplete (run capi-image gc); 130 / 143
interrupted by SIGINT / SIGTERM (cleaned up)."""

APP_EPILOG = """\b
Start here:
  capi-image init prod              write prod.yaml and vars/k8s-1.31.json
  export HCLOUD_TOKEN=...           a read & write token of the Hetzner project
  capi-image plan -p prod           what a build will do, no cost
  capi-image build -p prod          build, boot-test and publish an image

Documentation: docs/commands.md and docs/cli.md in capi-image's repository."""

# command -> (summary, details, examples)
COMMANDS: dict[str, tuple[str, str, list[str]]] = {
    "init": (
        "Write a project file and the var file it names.",
        "Writes NAME.yaml (location, server type, OS, image name, labels, retention; each setting "
        "explained) into --dir and vars/k8s-1.31.json (image-builder's Kubernetes versions) where "
        "its relative paths start: beside it, or for a config/projects/ folder in config/. An "
        "existing project file is never overwritten.",
        ["capi-image init prod", "capi-image init stage --dir config/projects   # then: capi-image build -p stage"],
    ),
    "build": (
        "Build an image and publish it as a snapshot.",
        "Boots a server, runs the node recipe over SSH, shuts it down, snapshots it, boots the "
        "snapshot once (boot test), labels it caph-image-name and deletes everything temporary, "
        "on every exit path. Prints one JSON line with the image.",
        [
            "capi-image build -p prod",
            "capi-image build -p ./prod.yaml --var-file vars/k8s-1.32.json --manifest dist/build.json",
            "capi-image build -p prod --matrix",
            "capi-image build -p local --recipe minimal --no-boot-test",
        ],
    ),
    "gc": (
        "Delete what crashed builds left behind.",
        "Servers, SSH keys and unpublished snapshots labelled created-by=capi-image (and the "
        "project's labels) older than --older-than. Published images are prune's business.",
        [
            "capi-image gc -p prod --dry-run",
            "capi-image gc -p prod --older-than 6h",
            "capi-image gc -p prod --build-id gh123-1",
        ],
    ),
    "images": (
        "List the snapshots this tool built.",
        "Newest first, with their labels; only the project's (its labels). Off a terminal the "
        "table is printed at full width; -o json for scripts.",
        ["capi-image images -p prod", "capi-image images -p prod -o json"],
    ),
    "plan": (
        "Print what a build would do, without cost.",
        "The resolved recipe: steps, versions, URLs, checksums and rendered files. No API call, no network access.",
        ["capi-image plan -p prod", "capi-image plan -p prod --var-file vars/k8s-1.32.json -o json"],
    ),
    "prune": (
        "Delete old published images, never one in use.",
        "Keeps the newest N per family (OS, architecture, Kubernetes minor), every image a server "
        "runs from and every image the --in-use files name. Only says what it would delete unless "
        "--yes.",
        [
            "capi-image prune -p prod --in-use clusters/prod/",
            "kubectl get hcloudmachinetemplates,machinedeployments,machinesets,machines,clusters -A -o yaml "
            "| capi-image prune -p prod --in-use - --yes",
        ],
    ),
    "manifests": (
        "Roll a published image into Cluster API manifests.",
        "New HCloudMachineTemplates and the KubeadmControlPlane / MachineDeployments repointed at "
        "them (a rolling update), edited in place or written as a kustomize Component; topology "
        "Clusters get their image variables set. The image name is checked to resolve under "
        "CAPH's rule first.",
        [
            "capi-image manifests --from dist/build.json --cluster clusters/prod/ --dry-run",
            "capi-image manifests --image k8s-v1.31.4-ubuntu-2404-x86-20261201 -p prod --cluster clusters/prod/",
            "capi-image manifests --from dist/build.json --cluster caph/templates/cluster-templates/v1beta1/hcloud "
            "--kustomize rollout/",
        ],
    ),
    "diff": (
        "What changed between two images.",
        "Packages added, removed, upgraded and downgraded (Debian version order), binaries and "
        "pre-pulled images changed, labels changed. Each side is a build manifest, a CycloneDX "
        "SBOM, or with -p a snapshot id or caph-image-name (its SBOM found by label in --sbom-dir). "
        "-o markdown for pull requests and job summaries.",
        [
            "capi-image diff dist/build-a1b2c3d4.json dist/build-e5f6a7b8.json",
            "capi-image diff -p prod k8s-v1.31.4-ubuntu-2404-x86-20261130 dist/build.json -o markdown",
        ],
    ),
    "summary": (
        "Markdown report of builds.",
        "For $GITHUB_STEP_SUMMARY: images, status and the manifests snippet of build manifests or matrix summaries.",
        ['capi-image summary dist/*.json >> "$GITHUB_STEP_SUMMARY"'],
    ),
}


def of(command: str) -> dict[str, Any]:
    """``app.command(**of("build"))``: help, short help and the examples as the epilog."""
    summary, details, examples = COMMANDS[command]
    return {
        "help": f"{summary}\n\n{details}",
        "short_help": summary,
        "epilog": "\b\nExamples:\n" + "\n".join(f"  {e}" for e in examples),
    }
