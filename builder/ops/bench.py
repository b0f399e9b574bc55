"""``make bench``: API requests and wall time of a build, side by side with the real Packer,
against one localcloud with modelled action times.

Model (seconds, multiplied by --factor; 1 is the headline): create 20, shutdown 10 (the guest is
off when the shutdown action ends), snapshot 180, start/delete 0. capi-image builds a
minimal-recipe project without boot test through its CLI; Packer 1.6.6 (Debian's, installed when
missing) builds the equivalent template: same server type, image, location, labels, and a shell
provisioner running the same commands. Machines are localcloud's stand-ins, so provisioning
costs only SSH round trips. Overhead = wall time - modelled cloud time.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from .. import log as logmod
from ..config import REPO_ROOT, ProjectConfig
from ..errors import CapiImageError, FailedError

if TYPE_CHECKING:  # the bench needs the localcloud extra; importing this module does not
    from localcloud.server import LocalCloud

MODEL = {"create": 20.0, "shutdown": 10.0, "snapshot": 180.0}


@dataclass
class Row:
    client: str
    requests: int
    wall: float
    modelled: float

    @property
    def overhead(self) -> float:
        return self.wall - self.modelled


def action_times(factor: float) -> dict[str, float]:
    return {
        "create_server": MODEL["create"] * factor,
        "start_server": 0.0,
        "shutdown_server": MODEL["shutdown"] * factor,
        "guest_shutdown": MODEL["shutdown"] * factor,  # off when the shutdown action ends
        "stop_server": 0.0,
        "create_image": MODEL["snapshot"] * factor,
        "delete_server": 0.0,
    }


def bench_project(lc: LocalCloud, **extra: object) -> ProjectConfig:
    """The benchmarked project: minimal recipe on stand-in machines, no boot test."""
    return ProjectConfig.model_validate(
        {
            "name": "bench",
            "endpoint": lc.endpoint,
            "location": "fsn1",
            "server_type": "cpx22",
            "os": "ubuntu-2404",
            "recipe": "minimal",
            "boot_test": False,
            "versions": REPO_ROOT / "config/vars/k8s-1.31.json",
            **extra,
        }
    )


def ours(lc: LocalCloud, factor: float, tmp: Path) -> tuple[Row, dict[str, Any]]:
    """``capi-image build`` as a user runs it (the CLI in its own process); its manifest."""
    cfg = bench_project(lc)
    (tmp / "config/projects").mkdir(parents=True, exist_ok=True)
    data = cfg.model_dump(mode="json", exclude_defaults=True)
    (tmp / "config/projects/bench.yaml").write_text(json.dumps({**data, "versions": str(cfg.versions_path())}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HCLOUD_")}
    env.update(CAPI_IMAGE_CONFIG_DIR=str(tmp / "config"), HCLOUD_TOKEN="bench")
    lc.admin().clear_requests()
    t0 = time.monotonic()
    r = subprocess.run(
        [sys.executable, "-m", "builder.cli", "build", "-p", "bench", "--log-format", "json",
         "--manifest", str(tmp / "bench.json")],
        env=env, capture_output=True, text=True, cwd=REPO_ROOT,
    )  # fmt: skip
    wall = time.monotonic() - t0
    if r.returncode != 0:
        raise FailedError(f"capi-image build failed (exit {r.returncode}): {r.stderr[-800:]}")
    manifest = json.loads((tmp / "bench.json").read_text())
    manifest["detection_lag"] = detection_lag(lc)
    return Row("capi-image", len(lc.admin().requests()), wall, sum(MODEL.values()) * factor), manifest


def detection_lag(lc: LocalCloud) -> dict[str, float]:
    """Per action the build waited on: seconds from the action's end (its modelled duration after
    it started) to the look that saw it ended — or from when the build began waiting on it, when
    that was later: a create call's start_server action (0 s in the model) is waited on after
    create_server, in order. In-process localcloud: its actions' clocks are ours."""
    to_wall = time.time() - time.monotonic()
    last_look: dict[int, float] = {}
    for r in lc.admin().requests():
        if r["method"] == "GET" and r["path"].startswith("/v1/actions/"):
            last_look[int(r["path"].rsplit("/", 1)[1])] = float(r["time"])
    lags: dict[str, float] = {}
    previous: tuple[float, float] | None = None  # (t0, last look) of the action waited on before
    for action_id, seen in sorted(last_look.items()):
        a = lc.state.backend.actions[action_id]
        end = a.t0 + a.duration + to_wall
        if previous is not None and abs(previous[0] - a.t0) < 0.05:  # from the same call
            end = max(end, previous[1])
        lags[f"{a.command} ({a.duration:.0f} s)"] = round(seen - end, 2)
        previous = (a.t0, seen)
    return lags


def real_packer(lc: LocalCloud, factor: float, tmp: Path, labels: dict[str, str]) -> Row:
    """The real Packer with the equivalent template, on the same localcloud."""
    from ..planning import plan_document
    from . import packer

    binary = packer.ensure_packer()
    cfg = bench_project(lc)
    doc = plan_document(cfg, build_id="packer", started=dt.datetime.now(dt.UTC))
    name = f"packer-bench-{int(time.time())}"
    tmpl = packer.template(
        server_type=cfg.server_type,
        image=cfg.base_image,
        location=cfg.location,
        labels={**labels, "caph-image-name": name, "created-by": "packer-bench"},
        commands=packer.shell_commands(doc),
    )
    lc.admin().clear_requests()
    wall = packer.run(binary, lc.endpoint, tmpl, tmp / "packer")
    return Row("Packer 1.6.6 (hcloud builder)", len(lc.admin().requests()), wall, sum(MODEL.values()) * factor)


def matrix_rows(lc: LocalCloud, factor: float, tmp: Path) -> list[tuple[str, ...]]:
    """A matrix of four images (2 OS x 2 architectures) built one at a time and four at a
    time, sharing one request budget: wall time against the modelled ideal."""
    from ..budget import RequestBudget
    from .matrix import expand, factory, run

    cfg = bench_project(
        lc,
        name="bench-matrix",
        image_name="k8s-{kubernetes_semver}-{os}-{arch}-{build_id}",
        matrix={"os": ["ubuntu-2404", "ubuntu-2204"], "architecture": ["x86", "arm"], "server_types": {"arm": "cax11"}},
    )
    variants = expand(cfg)
    one_build = sum(MODEL.values()) * factor
    rows: list[tuple[str, ...]] = []
    first_wall = 0.0
    for parallel in (1, len(variants)):
        budget = RequestBudget()

        make = factory(lc.endpoint, "bench", tmp / f"matrix-{parallel}")
        lc.admin().clear_requests()
        t0 = time.monotonic()
        outcome = run(variants, make, parallel=parallel, budget=budget)
        wall = time.monotonic() - t0
        failed = [r.variant.key for r in outcome.results if r.status != "published"]
        if failed:
            raise RuntimeError(f"matrix bench: {failed} not published")
        first_wall = first_wall or wall
        ideal = one_build * -(-len(variants) // parallel)
        rows.append((str(parallel), str(len(variants)), str(len(lc.admin().requests())), f"{wall:.2f}",
                     f"{ideal:.2f}", f"{first_wall / wall:.2f}x"))  # fmt: skip
    return rows


def vm_row(tmp: Path) -> tuple[str, ...]:
    """``make image PROJECT=local`` against an external ``python -m localcloud serve`` (qemu) named
    by HCLOUD_ENDPOINT — the shipped project unchanged: full recipe, the server's own artifact
    mirror. Reports the snapshot size against the bytes used in the guest at shutdown, and how
    long each server took to answer SSH: the build server from the base image, the boot-test
    server from the snapshot (every CAPH node boots like the latter)."""
    import os
    import subprocess
    import sys

    from localcloud.machines.kvm import cached_probe_kvm
    from localcloud.paths import default_cache_dir

    # The one-time KVM probe (30 s where KVM is broken) must not count as the build server's boot.
    cached_probe_kvm(default_cache_dir() / "images" / "debian-12-x86" / "vmlinuz", default_cache_dir())
    serve = subprocess.Popen(
        [sys.executable, "-m", "localcloud", "serve", "--backend", "qemu", "--state-dir", str(tmp / "state")],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert serve.stdout is not None
        endpoint = serve.stdout.readline().strip()
        if not endpoint.startswith("http"):
            raise RuntimeError("python -m localcloud serve did not start")
        env = {**os.environ, "HCLOUD_ENDPOINT": endpoint, "HCLOUD_TOKEN": "bench"}
        t0 = time.monotonic()
        r = subprocess.run(
            [sys.executable, "-m", "builder.cli", "build", "-p", "local", "--log-format", "json",
             "--manifest", str(tmp / "vm.json")],
            env=env, capture_output=True, text=True, cwd=REPO_ROOT,
        )  # fmt: skip
        wall = time.monotonic() - t0
    finally:
        serve.terminate()
        serve.wait(timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"the local build failed (exit {r.returncode}): {r.stderr[-1500:]}")
    manifest = json.loads((tmp / "vm.json").read_text())
    size = manifest["image_size_gb"] * 1024**3
    ssh = manifest["ssh_ready_seconds"]
    return (
        f"local project ({len(manifest['steps'])} steps), {manifest['os']}",
        f"{size / 1e6:.0f} MB",
        f"{manifest['root_used_bytes'] / 1e6:.0f} MB",
        f"{size / manifest['root_used_bytes']:.3f}",
        f"{ssh['build']:.0f} s",
        f"{ssh['boot-test']:.0f} s",
        f"{ssh['boot-test'] / ssh['build']:.2f}",
        f"{wall:.0f} s",
    )


def main(
    factor: Annotated[float, typer.Option(help="scale of the modelled action times (1 = real durations)")] = 0.1,
    vm: Annotated[
        bool, typer.Option(help="also build the local project on real VMs: snapshot size, boot times")
    ] = False,
    matrix: Annotated[bool, typer.Option(help="also a matrix of 4 builds, 1 vs 4 at a time")] = False,
) -> None:
    from localcloud.server import LocalCloud, Settings

    logmod.configure("json", stream=open("/dev/null", "w"))  # noqa: SIM115 - silence build logs
    # Packer probes SSH with bare TCP connects; the stub SSH server's paramiko would print each
    # as a traceback ("Error reading SSH protocol banner").
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)
    console = Console(width=150)  # the tables stay readable in a CI log (no terminal width)
    packer_error: str | None = None
    with (
        tempfile.TemporaryDirectory() as tmp,
        LocalCloud(Settings(backend="stub", action_times=action_times(factor))) as lc,
    ):
        mine, manifest = ours(lc, factor, Path(tmp))
        rows = [mine]
        try:
            rows.append(real_packer(lc, factor, Path(tmp), manifest["labels"]))
        except CapiImageError as e:
            packer_error = str(e)
        mrows = matrix_rows(lc, factor, Path(tmp)) if matrix else []
    table = Table(title=f"one build against localcloud, modelled times x{factor} ({dt.date.today()})")
    for col in ("client", "API requests", "wall s", "modelled cloud s", "overhead s"):
        table.add_column(col, justify="right" if col != "client" else "left")
    for r in rows:
        table.add_row(r.client, str(r.requests), f"{r.wall:.2f}", f"{r.modelled:.2f}", f"{r.overhead:.2f}")
    console.print(table)
    by_call = ", ".join(f"{k} {v}" for k, v in manifest["api_requests_by_call"].items())
    console.print(f"capi-image requests by call: {by_call}")
    lags = ", ".join(f"{k} {v:+.2f}" for k, v in manifest["detection_lag"].items())
    console.print(f"capi-image noticed each action's end after (s; allowed: 2 % of its duration or 3 s): {lags}")
    if len(rows) == 2:
        us, them = rows
        delta = us.wall - them.wall
        console.print(
            f"capi-image: {them.requests / us.requests:.1f}x fewer API requests than Packer; wall time "
            f"{delta:+.2f} s ({100 * delta / them.wall:+.2f} %) against Packer's"
        )
    console.print(
        "targets at --factor 1: capi-image <= 22 API requests per build and >= 15x fewer than Packer; "
        "wall time within 1 % (or 3 s) of Packer's"
    )
    if mrows:
        mt = Table(title="matrix build: 2 OS x 2 architectures, one request budget")
        for col in ("parallel", "builds", "API requests", "wall s", "modelled ideal s", "speed-up"):
            mt.add_column(col, justify="right")
        for mrow in mrows:
            mt.add_row(*mrow)
        console.print(mt)
        console.print("target: 4 at a time >= 3x faster than one at a time, the same requests")
    if vm:
        with tempfile.TemporaryDirectory() as tmp:
            row = vm_row(Path(tmp))
        vt = Table(title=f"make image PROJECT=local against an external localcloud, real VMs ({dt.date.today()})")
        for col in ("build", "snapshot image_size", "root fs used at shutdown", "size ratio",
                    "SSH: build server", "SSH: from snapshot", "boot ratio", "build wall"):  # fmt: skip
            vt.add_column(col)
        vt.add_row(*row)
        console.print(vt)
        console.print(
            "targets: size ratio <= 1.05 (sysprep + fstrim leave no dead blocks in the snapshot); "
            "boot ratio <= 1.3 (a server from the snapshot answers SSH about as fast as the first boot; "
            "both timed from the create call)"
        )
    if packer_error is not None:
        Console(stderr=True, soft_wrap=True).print(
            f"error: Packer's row is missing: {packer_error}", markup=False, highlight=False
        )
        raise typer.Exit(1)


if __name__ == "__main__":
    typer.run(main)
