"""``make bench``: API requests and orchestration overhead of a build, side by side with a
Packer-like client, against localcloud with modelled action times.

Model (seconds, multiplied by --factor): create 20, shutdown 10, snapshot 180. The Packer-like
client does what packer-plugin-hcloud does: the same calls, every action polled every 500 ms,
shutdown judged by its action only. Overhead = wall time - modelled cloud time. Machines are
localcloud's stand-ins, so provisioning costs only the SSH round trips.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from hcloud import Client
from hcloud.images import Image
from hcloud.locations import Location
from hcloud.server_types import ServerType
from rich.console import Console
from rich.table import Table

from localcloud.server import LocalCloud, Settings

from . import log as logmod
from .build import Build
from .cloud import Cloud, make_client
from .config import REPO_ROOT, ProjectConfig, Retry
from .keys import KeyPair

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


def ours(lc: LocalCloud, factor: float, tmp: Path) -> Row:
    cfg = bench_project(lc)
    client, counter = make_client("bench", lc.endpoint)
    lc.admin().clear_requests()
    t0 = time.monotonic()
    Build(cfg, Cloud(client, counter, Retry()), endpoint=lc.endpoint, manifest_path=tmp / "bench.json").run()
    wall = time.monotonic() - t0
    return Row("capi-image", len(lc.admin().requests()), wall, sum(MODEL.values()) * factor)


def packer_like(lc: LocalCloud, factor: float) -> Row:
    """packer-plugin-hcloud's sequence with hcloud-go's WaitFor at a constant 500 ms."""
    client = Client(token="bench", api_endpoint=lc.endpoint, timeout=30)
    lc.admin().clear_requests()
    t0 = time.monotonic()

    def wait(action_id: int) -> None:
        while client.actions.get_by_id(action_id).status == "running":
            time.sleep(0.5)

    key = client.ssh_keys.create(name=f"packer-{time.time_ns()}", public_key=KeyPair.generate().public_openssh)
    r = client.servers.create(
        name=f"packer-{time.time_ns()}",
        server_type=ServerType(name="cpx22"),
        image=Image(name="ubuntu-24.04"),
        location=Location(name="fsn1"),
        ssh_keys=[key],
    )
    for a in [r.action, *(r.next_actions or [])]:
        assert a is not None and a.id is not None
        wait(a.id)
    assert r.server is not None and r.server.id is not None
    server = client.servers.get_by_id(r.server.id)  # Packer reads the IP
    shutdown = client.servers.shutdown(server)
    assert shutdown.id is not None
    wait(shutdown.id)
    img = client.servers.create_image(server, description="packer", type="snapshot")
    assert img.action.id is not None
    wait(img.action.id)
    delete = client.servers.delete(server)
    assert delete.id is not None
    wait(delete.id)
    client.ssh_keys.delete(key)
    wall = time.monotonic() - t0
    return Row("packer-like (500 ms polling)", len(lc.admin().requests()), wall, sum(MODEL.values()) * factor)


def matrix_rows(lc: LocalCloud, factor: float, tmp: Path) -> list[tuple[str, ...]]:
    """A matrix of four images (2 OS x 2 architectures) built one at a time and four at a
    time, sharing one request budget: wall time against the modelled ideal."""
    from .budget import RequestBudget
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

    from localcloud.machines.qemu import cached_probe_kvm
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
    logmod.configure("json", stream=open("/dev/null", "w"))  # noqa: SIM115 - silence build logs
    with (
        tempfile.TemporaryDirectory() as tmp,
        LocalCloud(Settings(backend="stub", action_times=action_times(factor))) as lc,
    ):
        rows = [ours(lc, factor, Path(tmp)), packer_like(lc, factor)]
        mrows = matrix_rows(lc, factor, Path(tmp)) if matrix else []
    table = Table(title=f"build against localcloud, modelled times x{factor} ({dt.date.today()})")
    for col in ("client", "API requests", "wall s", "modelled cloud s", "overhead s"):
        table.add_column(col, justify="right" if col != "client" else "left")
    for r in rows:
        table.add_row(r.client, str(r.requests), f"{r.wall:.2f}", f"{r.modelled:.2f}", f"{r.overhead:.2f}")
    console = Console(width=150)  # the tables stay readable in a CI log (no terminal width)
    console.print(table)
    console.print("targets: capi-image <= 30 API requests per build, <= 3 s overhead beyond the modelled cloud time")
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


if __name__ == "__main__":
    typer.run(main)
