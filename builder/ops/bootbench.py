"""``make bench-boot``: how long a server from a published node image takes to answer SSH,
against a server from the base image it was built on — the boot test's question, asked often
enough to be a measurement rather than one sample.

Both servers get the build's user-data (a pinned host key) and the same server type; they are
booted one at a time, alternating base and node, so both see the same host. "Answered" means
an SSH login with the server's key succeeded (what the build and the boot test wait for), timed
from the create call. It creates through the build's own ``Resources`` (retries, capacity,
confirmed deletes): everything carries the project's labels, ``created-by=capi-image``, a
``build-id`` of its own and ``role=bench-boot``, and is deleted before the next boot, also on
failure or Ctrl-C (``capi-image gc`` finds what a killed run left).
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import dataclass
from typing import Annotated

import typer
from rich.table import Table

from .. import log as logmod
from ..caph import CAPH_LABEL
from ..cliapp import api, print_error
from ..cloud import Cloud
from ..errors import CapiImageError, InputError
from ..keys import KeyPair, host_key_user_data
from ..pipeline.build import new_build_id
from ..placement import Candidate, Placements
from ..projects import load_project
from ..resources import CREATED_BY, Resources
from ..ssh import Session
from ..tables import console
from .images import list_images

POLL_SECONDS = 1.0
ROLE = "bench-boot"


@dataclass(frozen=True)
class Boot:
    pair: int
    image: str  # "base" or "node"
    seconds: float


def node_image(cloud: Cloud, labels: dict[str, str], wanted: str | None) -> tuple[int, str, str]:
    """The snapshot to boot: ``wanted`` (id or caph-image-name), else the project's newest."""
    rows = [r for r in list_images(cloud, labels) if r["status"] == "available"]
    if wanted:
        rows = [r for r in rows if wanted in (str(r["id"]), r[CAPH_LABEL])]
    if not rows:
        what = f"image {wanted!r}" if wanted else "published image"
        raise InputError(f"no {what} of this project: build one first (make image PROJECT=...)")
    return int(rows[0]["id"]), str(rows[0][CAPH_LABEL]), str(rows[0]["architecture"])


def time_boot(res: Resources, image_id: int, placements: Placements, deadline: float, tag: str) -> float:
    """Seconds from the create call until root logs in over SSH (the build's measure); the
    server and key deleted, confirmed, on every path (through the build's own Resources)."""
    login, host = KeyPair.generate(), KeyPair.generate()
    key_id = res.upload_key(ROLE, f"{ROLE}-{tag}", login)
    server: list[int] = []
    try:
        started = time.monotonic()
        _, ip = res.launch(
            ROLE, f"{ROLE}-{tag}", image_id=image_id, key_id=key_id, user_data=host_key_user_data(host),
            placements=placements, track=server.append,
        )  # fmt: skip
        # The build's own look (pinned host key; another key answering is never retried),
        # polled at most POLL_SECONDS apart so the time is that close to the truth.
        session = Session(ip, login, host)
        try:
            res.cloud.poll(f"SSH to image {image_id}", lambda: True if session.try_connect() else None, deadline,
                           cap=POLL_SECONDS)  # fmt: skip
        finally:
            session.close()
        return time.monotonic() - started
    finally:
        for sid in server:
            res.delete_server(sid)
        res.delete_key(key_id)


def summary(boots: list[Boot]) -> tuple[float, float, float]:
    """Median seconds of the base image, of the node image, and the median of the pairs' ratios."""
    base = {b.pair: b.seconds for b in boots if b.image == "base"}
    node = {b.pair: b.seconds for b in boots if b.image == "node"}
    ratios = [node[p] / base[p] for p in sorted(base.keys() & node.keys())]
    return statistics.median(base.values()), statistics.median(node.values()), statistics.median(ratios)


def main(
    project: Annotated[str, typer.Option("-p", "--project", help="project name or path")] = "local",
    image: Annotated[str | None, typer.Option(help="snapshot id or caph-image-name (default: the newest)")] = None,
    pairs: Annotated[int, typer.Option(min=1, max=20, help="base/node boots, alternating")] = 3,
    deadline: Annotated[float, typer.Option(help="seconds one boot may take")] = 900,
) -> None:
    """Boot the project's base image and its newest node image in turn; print each time to SSH
    and the median ratio."""
    logmod.configure("auto")
    boots: list[Boot] = []
    try:
        config = load_project(project)
        with api(config) as (cloud, _):
            image_id, name, arch = node_image(cloud, config.labels, image)
            base = cloud.call(
                "look up image", lambda: cloud.client.images.get_by_name_and_architecture(config.base_image, arch)
            )
            if base is None or base.id is None:
                raise InputError(f"base image {config.base_image} ({arch}) does not exist in this project")
            console().print(f"base image {config.base_image}, node image {name} (id {image_id})", soft_wrap=True)
            # Labelled as a build's resources are (project labels, a bench id): gc finds leftovers.
            labels = {**config.labels, "created-by": CREATED_BY, "build-id": f"bench-{new_build_id()}"}
            res = Resources(cloud, config.timeouts, labels)
            placements = Placements([Candidate(config.server_type, config.location)])
            for pair in range(pairs):
                for kind, image_of in (("base", base.id), ("node", image_id)):
                    seconds = time_boot(res, image_of, placements, deadline, f"{kind}-{pair}")
                    boots.append(Boot(pair, kind, round(seconds, 1)))
                    console().print(f"pair {pair + 1}/{pairs}: {kind} {seconds:.1f} s")
                    sys.stdout.flush()  # a boot takes minutes: show each as it ends, also into a file
    except CapiImageError as e:
        print_error(str(e))
        raise typer.Exit(e.exit_code) from None
    median_base, median_node, ratio = summary(boots)
    table = Table(title="SSH answered after create (s)")
    for column in ("pair", "base", "node", "node / base"):
        table.add_column(column, justify="right")
    for pair in range(pairs):
        b, n = (next(x.seconds for x in boots if x.pair == pair and x.image == k) for k in ("base", "node"))
        table.add_row(str(pair + 1), f"{b:.1f}", f"{n:.1f}", f"{n / b:.2f}x")
    table.add_row("median", f"{median_base:.1f}", f"{median_node:.1f}", f"{ratio:.2f}x")
    console().print(table)


if __name__ == "__main__":
    typer.run(main)
