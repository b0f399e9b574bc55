"""The node recipe: which steps a build runs, in order.

``full`` reproduces image-builder's hcloud recipe (see each step for where we deliberately
differ). ``minimal`` (provenance + sysprep) is for stand-in machines and the builder's own tests.
Order differs from image-builder in two places, on purpose: registry mirrors are written before
the kubernetes step (so the image pre-pull goes through them), and custom scripts run before
sysprep and verify (so they are cleaned and checked too).
"""

from __future__ import annotations

from .options import RecipeContext
from .plan import Plan, Put, Run, Step
from .steps.containerd import containerd
from .steps.kubernetes import kubernetes
from .steps.mirrors import mirrors
from .steps.node import node, provenance
from .steps.provider import provider
from .steps.scripts import scripts
from .steps.setup import setup
from .steps.sysprep import reset_cloud_init, sysprep
from .steps.verify import verify

RECIPES = ("full", "minimal")


def full_plan(ctx: RecipeContext) -> Plan:
    steps = [
        setup(ctx),
        node(ctx),
        provider(ctx),
        containerd(ctx),
        mirrors(ctx),
        kubernetes(ctx),
        scripts(ctx),
        sysprep(ctx),
        verify(ctx),
    ]
    return Plan(tuple(s for s in steps if s is not None))


def minimal_plan(ctx: RecipeContext) -> Plan:
    return Plan(
        (
            Step(
                "provenance",
                "record what built this image",
                (Put("/etc/capi-image-release", provenance(ctx).encode()),),
            ),
            Step(
                "sysprep",
                "make the disk a template: no identity, no secrets, no free blocks",
                (
                    *reset_cloud_init("--seed"),
                    Run("rm -f /etc/ssh/ssh_host_*"),
                    Run("truncate -s 0 /root/.ssh/authorized_keys"),
                    Run("rm -rf /tmp/* /var/tmp/*"),
                    Run("fstrim --all || true"),
                    Run("sync"),
                ),
            ),
        )
    )


def build_plan(ctx: RecipeContext, recipe: str = "full") -> Plan:
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe '{recipe}'; known: {', '.join(RECIPES)}")
    return full_plan(ctx) if recipe == "full" else minimal_plan(ctx)
