"""The phases of a build, in order, each with what it creates and what undoes it (the way
packer-plugin-hcloud lists its steps with their cleanup). ``Build.run`` runs them; cleanup
follows on every path. docs/architecture.md's phase table is generated from here
(``make docs``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import boottest, outputs
from .build import Build


@dataclass(frozen=True)
class Phase:
    """One phase of a build, with what it creates and what undoes that (docs/architecture.md's
    phase table is generated from these: ``make docs``)."""

    name: str
    run: Callable[[Build], None]
    does: str
    creates: str = "—"
    undone_by: str = "—"
    when: Callable[[Build], bool] = lambda _b: True


# The build, in order: name (the log's and manifest's phase) -> what it does. Cleanup follows,
# always (Build.run).
STEPS: tuple[Phase, ...] = (
    Phase(
        "preflight",
        Build.preflight,
        "token, catalog, base image, versions, labels, recipe, CAPH name clash",
        "nothing",
    ),
    Phase(
        "ssh-key",
        Build.create_ssh_key,
        "uploads a fresh ed25519 key",
        "SSH key (`role=build`)",
        "cleanup: `Resources.delete_key`",
    ),
    Phase(
        "server",
        Build.create_server,
        "creates the build server (capacity fallback over the project's placements), waits until it runs",
        "server (`role=build`)",
        "cleanup: `Resources.delete_server`",
    ),
    Phase("ssh", Build.wait_for_ssh, "SSH with the host key pinned through user data; `cloud-init status --wait`"),
    Phase("provision", Build.provision, "runs the plan step by step"),
    Phase(
        "sbom",
        outputs.take_sbom,
        "reads packages, binaries, images, kernel (read-only); writes the CycloneDX SBOM beside the manifest; "
        "`--skip-unchanged`: finds the published image of the family holding the same",
        "the SBOM file (kept: it describes the snapshot)",
    ),
    Phase(
        "shutdown",
        Build.shutdown,
        "ACPI shutdown, power off after `timeouts.shutdown` (skipped when unchanged)",
        when=lambda b: b.changed,
    ),
    Phase(
        "snapshot",
        Build.snapshot,
        "`create_image`, waits until available",
        "snapshot (build labels, no `caph-image-name`)",
        "cleanup unless published: `Resources.delete_image`",
        when=lambda b: b.changed,
    ),
    Phase(
        "boot-test",
        boottest.boot_test,
        "boots a server from the snapshot with a fresh key, runs the boot checks, deletes it",
        "SSH key + server (`role=boot-test`)",
        "the phase itself; cleanup as a net",
        when=lambda b: b.boot_test_enabled and b.changed,
    ),
    Phase(
        "publish",
        Build.publish,
        "re-checks the CAPH name, adds `caph-image-name`",
        undone_by="never undone: a published image is the product",
        when=lambda b: b.changed,
    ),
)
CLEANUP = Phase(
    "cleanup",
    Build.cleanup_phase,
    "deletes by tracked id, then by label when anything failed or was retried",
    undone_by="`capi-image gc` when cleanup is incomplete (exit 3)",
)
PHASES: tuple[str, ...] = (*(p.name for p in STEPS), CLEANUP.name)

__all__ = ["CLEANUP", "PHASES", "STEPS", "Phase"]
