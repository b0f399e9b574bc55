"""The container images localcloud's registry mirror serves: what a node pre-pulls.

Laid out as content-addressed blobs plus an index of names, the way a registry stores them:
``<mirror>/registry/blobs/sha256/<hex>`` and ``<mirror>/registry/index.json`` (name:tag ->
manifest descriptor). ``localcloud.api.registry`` serves them read-only over the OCI
distribution API, so a VM's containerd pulls them **through** the ``hosts.toml`` mirror entries
exactly as a production node pulls through a Harbor proxy cache.

What they hold: ``pause`` is a real static pause binary (its C source below, compiled on the
host when the mirror is populated: a pod sandbox could run it); every other image is a
**stand-in** — one small layer with a ``/STANDIN`` file naming what it stands for (the real
kube-apiserver etc. exist only on the internet). Every image is a valid single-platform OCI
image (manifest, config with diff_ids, gzip layer), so containerd unpacks it for real.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

# Our own pause: the pod sandbox's process sleeps until it is told to stop and reaps the
# zombies it inherits (what a sandbox's PID 1 must do).
PAUSE_C = r"""
/* localcloud's pause: sleep until SIGINT/SIGTERM, reap orphaned children. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
static void stop(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, 0, WNOHANG) > 0) {} }
int main(void) {
  struct sigaction s = {0};
  s.sa_handler = stop;
  sigaction(SIGINT, &s, 0);
  sigaction(SIGTERM, &s, 0);
  s.sa_handler = reap;
  s.sa_flags = SA_NOCLDSTOP;
  sigaction(SIGCHLD, &s, 0);
  for (;;) pause();
}
"""


@dataclass(frozen=True)
class Blob:
    digest: str
    data: bytes


def _blob(data: bytes) -> Blob:
    return Blob(f"sha256:{hashlib.sha256(data).hexdigest()}", data)


def _layer(files: dict[str, tuple[bytes, int]]) -> tuple[Blob, str]:
    """A gzip layer (deterministic: mtime 0, root-owned) and its uncompressed diff_id."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, (data, mode) in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            t.addfile(info, io.BytesIO(data))
    diff_id = f"sha256:{hashlib.sha256(raw.getvalue()).hexdigest()}"
    return _blob(gzip.compress(raw.getvalue(), mtime=0)), diff_id


def image(files: dict[str, tuple[bytes, int]], entrypoint: list[str] | None, labels: dict[str, str]) -> list[Blob]:
    """[manifest, config, layer] of a one-layer linux/amd64 image."""
    layer, diff_id = _layer(files)
    config = _blob(
        json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {**({"Entrypoint": entrypoint} if entrypoint else {}), "Labels": labels},
                "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            },
            sort_keys=True,
        ).encode()
    )
    manifest = _blob(
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": MANIFEST,
                "config": {"mediaType": CONFIG, "digest": config.digest, "size": len(config.data)},
                "layers": [{"mediaType": LAYER, "digest": layer.digest, "size": len(layer.data)}],
            },
            sort_keys=True,
        ).encode()
    )
    return [manifest, config, layer]


def static_pause() -> bytes | None:
    """A static pause binary compiled from PAUSE_C, or None without a C compiler/static libc."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "pause.c", Path(tmp) / "pause"
        src.write_text(PAUSE_C)
        r = subprocess.run([cc, "-Os", "-static", "-s", "-o", str(out), str(src)], capture_output=True)
        return out.read_bytes() if r.returncode == 0 else None


def write_registry(root: Path, names: tuple[str, ...], pause_image: str) -> dict[str, str]:
    """Write every image of ``names`` under ``root`` (blobs + index.json); return name -> what
    it holds ("static pause" or "stand-in")."""
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    index: dict[str, dict[str, object]] = {}
    kinds: dict[str, str] = {}
    pause = static_pause()
    for name in names:
        if name == pause_image and pause is not None:
            parts = image({"pause": (pause, 0o755)}, ["/pause"], {"io.localcloud.image": "static pause"})
            kinds[name] = "static pause"
        else:
            note = f"STANDIN {name}: a placeholder image; the real one exists only on the internet.\n"
            parts = image({"STANDIN": (note.encode(), 0o644)}, None, {"io.localcloud.image": "stand-in"})
            kinds[name] = "stand-in"
        for b in parts:
            (blobs / b.digest.removeprefix("sha256:")).write_bytes(b.data)
        manifest = parts[0]
        index[name] = {"mediaType": MANIFEST, "digest": manifest.digest, "size": len(manifest.data)}
    (root / "index.json").write_text(json.dumps(index, indent=1, sort_keys=True) + "\n")
    return kinds
