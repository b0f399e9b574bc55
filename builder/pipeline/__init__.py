"""The build pipeline: preflight → ssh-key → server → ssh → provision → shutdown → snapshot →
boot-test → publish, then cleanup (``phases.STEPS``). The operations around a build (gc, prune,
images, manifests, matrix, bench, summary) live in ``builder.ops``; what both create and delete
in a project lives in ``builder.resources``."""

from .build import Build, BuildResult, new_build_id
from .phases import PHASES, STEPS
from .preflight import ImageSpec, PreflightError

__all__ = ["PHASES", "STEPS", "Build", "BuildResult", "ImageSpec", "PreflightError", "new_build_id"]
