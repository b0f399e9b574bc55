"""``python -m localcloud``: serve the API, build the base image, populate the artifact mirror,
register images."""

from __future__ import annotations

import enum
import logging
import sys
from pathlib import Path
from typing import Annotated

try:  # the server's dependencies are the localcloud extra: without it, one line, not a traceback
    import uvicorn

    from .server import KEEP_ALIVE_SECONDS, Settings, bound_port, build
except ImportError as missing:  # pragma: no cover - exercised from a wheel without the extra
    sys.exit(
        f"localcloud needs the localcloud extra ({missing.name} is not installed): pip install 'capi-image[localcloud]'"
    )

import typer

from .imagestore import ImageStore
from .paths import default_cache_dir

HELP = """localcloud: the Hetzner Cloud API on loopback, with stand-in or real QEMU machines.

The test bed of capi-image and its embedded default (endpoint: localcloud)."""

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help=HELP,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="\b\nExamples:\n  python -m localcloud serve --port 8000\n"
    "  python -m localcloud serve --backend qemu --state-dir .state/localcloud\n  python -m localcloud base-image",
)
CacheDirOpt = Annotated[
    Path | None, typer.Option(help="base images and the mirror (default $LOCALCLOUD_CACHE or ~/.cache/localcloud)")
]


class Backend(enum.StrEnum):
    stub = "stub"
    qemu = "qemu"


class Accel(enum.StrEnum):
    auto = "auto"
    kvm = "kvm"
    tcg = "tcg"


def _action_times(values: list[str]) -> dict[str, float]:
    out = {}
    for v in values:
        name, sep, seconds = v.partition("=")
        try:
            out[name] = float(seconds)
        except ValueError:
            sep = ""
        if not sep or not name:
            raise typer.BadParameter(f"'{v}': expected COMMAND=SECONDS, e.g. create_image=5")
    return out


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="0 picks a free port")] = 0,
    backend: Annotated[
        Backend, typer.Option(help="stub: SSH stand-ins that answer every command with nothing; qemu: real VMs")
    ] = Backend.stub,
    state_dir: Annotated[Path | None, typer.Option(help="keeps disks, snapshots and keys (qemu: required)")] = None,
    cache_dir: CacheDirOpt = None,
    action_time: Annotated[
        list[str], typer.Option(metavar="COMMAND=SECONDS", help="modelled action time, repeatable, e.g. create_image=5")
    ] = [],  # noqa: B006
    token: Annotated[
        list[str], typer.Option(metavar="TOKEN", help="accept only these bearer tokens (repeatable)")
    ] = [],  # noqa: B006
    rate_limit: Annotated[int, typer.Option(help="requests per bucket (Hetzner: 3600)")] = 3600,
    rate_refill: Annotated[float, typer.Option(help="tokens added per second (Hetzner: 1)")] = 1.0,
    accel: Annotated[Accel, typer.Option(help="auto (KVM only if it demonstrably boots), kvm or tcg")] = Accel.auto,
    vm_memory: Annotated[int, typer.Option(help="MiB of memory per VM")] = 2048,
    vm_cpus: Annotated[int, typer.Option(help="vCPUs per VM")] = 2,
) -> None:
    """Serve the Hetzner Cloud API under /v1; print the endpoint URL as the first line.

    The stub backend's machines answer every SSH command with empty output: builds with
    --recipe minimal --no-boot-test work; the full recipe's checks and every boot test fail there
    (they read what the machine answers). Use --backend qemu for those."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    if backend == "qemu" and state_dir is None:
        raise typer.BadParameter("--backend qemu needs --state-dir")
    settings = Settings(
        host=host,
        port=port,
        backend=backend.value,
        state_dir=state_dir,
        cache_dir=cache_dir,
        action_times=_action_times(action_time),
        tokens=frozenset(token),
        rate_limit=rate_limit,
        rate_refill=rate_refill,
        accel=accel.value,
        vm_memory_mb=vm_memory,
        vm_cpus=vm_cpus,
    )
    asgi, _state = build(settings)
    server = uvicorn.Server(
        uvicorn.Config(
            asgi, host=host, port=port, log_level="warning", lifespan="on", timeout_keep_alive=KEEP_ALIVE_SECONDS
        )
    )

    # Print the endpoint once bound; uvicorn handles SIGINT/SIGTERM and runs our shutdown
    # (which stops every VM) before exiting.
    original_startup = server.startup

    async def startup(sockets: object = None) -> None:
        await original_startup(sockets=sockets)  # type: ignore[arg-type]
        if server.started:
            print(f"http://{host}:{bound_port(server)}/v1", flush=True)

    server.startup = startup  # type: ignore[method-assign]
    server.run()
    if not server.started:
        raise typer.Exit(1)


@app.command("base-image")
def base_image(
    cache_dir: CacheDirOpt = None,
    mirror: Annotated[str | None, typer.Option(help="Debian mirror URL for mmdebstrap")] = None,
    name: Annotated[
        list[str] | None,
        typer.Option(metavar="NAME", help="the system image to build (repeatable; default: every one)"),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="build again even when cached")] = False,
) -> None:
    """Build the Debian base images (system images debian-12 and debian-13) with mmdebstrap, cached."""
    from .baseimage import BASE_IMAGES, build_base_image

    store = ImageStore(cache_dir or default_cache_dir())
    for wanted in name or list(BASE_IMAGES):
        if wanted not in BASE_IMAGES:
            raise typer.BadParameter(
                f"unknown base image '{wanted}'; known: {', '.join(BASE_IMAGES)}", param_hint="--name"
            )
        print(build_base_image(store, wanted, mirror=mirror, force=force))


@app.command("artifacts")
def artifacts(
    cache_dir: CacheDirOpt = None,
    force: Annotated[bool, typer.Option("--force", help="populate again even when cached")] = False,
) -> None:
    """Populate the artifact mirror localcloud serves to its VMs (cached)."""
    from .artifacts import MirrorError, populate_mirror

    try:
        print(populate_mirror(cache_dir or default_cache_dir(), force=force))
    except MirrorError as e:
        print(f"error: {e}", file=sys.stderr)
        raise typer.Exit(1) from e


@app.command("register-image")
def register_image(
    name: Annotated[str, typer.Argument(help="system image name, e.g. ubuntu-24.04")],
    disk: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="the disk image (raw or qcow2)")],
    architecture: Annotated[str, typer.Option(help="x86 or arm")] = "x86",
    os_flavor: Annotated[str, typer.Option(help="the API's os_flavor: ubuntu, debian, ...")] = "unknown",
    os_version: Annotated[str, typer.Option(help="the API's os_version, e.g. 24.04")] = "",
    kernel: Annotated[Path | None, typer.Option(help="boot this kernel directly (bare ext4 root disks)")] = None,
    initrd: Annotated[Path | None, typer.Option(help="the initrd for --kernel")] = None,
    cache_dir: CacheDirOpt = None,
) -> None:
    """Register a disk image (raw or qcow2) as a system image, e.g. the official Ubuntu cloud image."""
    store = ImageStore(cache_dir or default_cache_dir())
    print(
        store.register(
            name,
            disk,
            architecture=architecture,
            os_flavor=os_flavor,
            os_version=os_version,
            kernel=kernel,
            initrd=initrd,
        )
    )


@app.command("images")
def images(cache_dir: CacheDirOpt = None) -> None:
    """List the registered system images."""
    for img in ImageStore(cache_dir or default_cache_dir()).list():
        boot = "direct kernel" if img.kernel_path else "bootloader"
        print(f"{img.name}\t{img.architecture}\t{img.disk_path}\t{boot}")


if __name__ == "__main__":
    app()
