"""Orchestration of ``make parity``: twin servers on an embedded localcloud, upstream's
playbooks on one, this recipe on the other, both read back and compared.

Both builds run at the same time (same Debian archive state for dist-upgrade); the servers and
the key are deleted on every path, and localcloud's VMs stop with it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hcloud import Client
from hcloud.images import Image
from hcloud.locations import Location
from hcloud.server_types import ServerType

from builder.errors import ProvisionError
from builder.keys import KeyPair, host_key_user_data
from builder.localmirror import lookup as lookup_local_mirror
from builder.planning import recipe_context, render
from builder.projects import load_project
from builder.ssh import Session
from localcloud.artifacts import populate_mirror
from localcloud.paths import default_cache_dir
from localcloud.server import LocalCloud, Settings
from provision.versions import IMAGE_BUILDER_VERSION, load_versions

from . import upstream
from .rules import IGNORE, RULES
from .state import COLLECT, compare, parse, report

REPO = Path(__file__).resolve().parents[2]
REFERENCE = Path(os.environ.get("IMAGE_BUILDER_REFERENCE", REPO.parent / "shared/reference/image-builder-v0.1.48"))


def log(msg: str) -> None:
    print(f"[parity {dt.datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def wait_for(what: str, probe: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not ready after {timeout:.0f}s")
        time.sleep(5)


class Upstream:
    """image-builder's python.yml + node.yml over one persistent SSH connection (ControlMaster),
    which also reads the machine afterwards: sysprep deletes authorized_keys."""

    def __init__(self, work: Path, ip: str, login: KeyPair, host: KeyPair) -> None:
        self.work, self.ip = work, ip
        self.key = work / "upstream.key"
        self.key.write_text(login.private_openssh())
        self.key.chmod(0o600)
        known = work / "known_hosts"
        known.write_text(f"{ip} {host.public_openssh}\n")
        self.sock = work / "upstream.sock"
        self.ssh_opts = [
            "-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes",
            "-o", f"ControlPath={self.sock}", "-o", "ServerAliveInterval=15", "-o", "ConnectTimeout=10",
        ]  # fmt: skip

    def ssh(self, command: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ssh", *self.ssh_opts, "-i", str(self.key), f"root@{self.ip}", command],
            text=True,
            capture_output=True,
            **kw,
        )

    def connect(self, timeout: float) -> None:
        def master() -> bool:
            r = subprocess.run(
                ["ssh", *self.ssh_opts, "-o", "ControlMaster=yes", "-o", "ControlPersist=6h", "-i", str(self.key),
                 "-fN", f"root@{self.ip}"],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            return r.returncode == 0

        wait_for("upstream VM SSH", master, timeout)
        self.ssh("cloud-init status --wait >/dev/null 2>&1; true", timeout=1800)

    def run(
        self, ansible_playbook: str, user_vars: dict[str, str], mirror: str, extras: str, extras_dir: Path
    ) -> dict[str, Any]:
        common, extra = upstream.ansible_vars(user_vars, mirror, extras, extras_dir)
        inventory = self.work / "inventory.ini"
        inventory.write_text(
            f"upstream ansible_host={self.ip} ansible_user=root ansible_ssh_private_key_file={self.key}\n"
        )
        # Every ssh/sftp/scp Ansible starts is one round trip over the control master: counted by
        # wrappers, for the provisioning comparison (make bench's figures).
        counts = self.work / "ssh-invocations"
        wrappers = self.work / "bin"
        wrappers.mkdir(exist_ok=True)
        for tool in ("ssh", "sftp", "scp"):
            w = wrappers / tool
            w.write_text(f'#!/bin/sh\necho {tool} >> {counts}\nexec /usr/bin/{tool} "$@"\n')
            w.chmod(0o755)
        env = {
            **os.environ,
            "ANSIBLE_SSH_EXECUTABLE": str(wrappers / "ssh"),
            "ANSIBLE_SFTP_EXECUTABLE": str(wrappers / "sftp"),
            "ANSIBLE_SCP_EXECUTABLE": str(wrappers / "scp"),
            "ANSIBLE_SSH_ARGS": " ".join([*self.ssh_opts, "-o", "ControlMaster=auto", "-o", "ControlPersist=6h"]),
            "ANSIBLE_SSH_CONTROL_PATH": str(self.sock),
            "ANSIBLE_ROLES_PATH": str(extras_dir / "roles"),
            "ANSIBLE_HOST_KEY_CHECKING": "True",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_PYTHON_INTERPRETER": "auto_silent",
        }
        results: dict[str, Any] = {}
        for playbook in ("python.yml", "node.yml"):
            cmd = upstream.playbook_command(
                ansible_playbook, REFERENCE, playbook, str(inventory), common, extra, self.work / "extra-vars.json"
            )
            log(f"upstream: {playbook}")
            counts.write_text("")
            started = time.monotonic()
            out = self.work / f"ansible-{playbook}.json"
            with out.open("w") as f:
                r = subprocess.run(
                    cmd, env={**env, "ANSIBLE_STDOUT_CALLBACK": "json"}, stdout=f, stderr=subprocess.PIPE, text=True
                )
            trips = len(counts.read_text().splitlines())
            results[playbook] = {
                "seconds": round(time.monotonic() - started), "rc": r.returncode, "json": out, "ssh_round_trips": trips,
            }  # fmt: skip
            if r.returncode != 0:
                raise RuntimeError(f"upstream {playbook} failed (rc={r.returncode}); see {out}\n{r.stderr[-2000:]}")
        return results

    def collect(self) -> str:
        r = self.ssh("bash -s", input=COLLECT, timeout=600)
        if "=== end" not in r.stdout:
            raise RuntimeError(f"reading the upstream machine failed: {r.stderr[-1000:]}")
        return r.stdout

    def close(self) -> None:
        subprocess.run(["ssh", *self.ssh_opts, "-O", "exit", f"root@{self.ip}"], capture_output=True)


def run_ours(ip: str, login: KeyPair, host: KeyPair, mirror_url: str) -> tuple[str, dict[str, Any]]:
    config = load_project("local")
    versions = load_versions(config.versions_path())
    now = dt.datetime.now(dt.UTC)
    ctx = recipe_context(config, versions, build_id="parity", started=now, arch="x86", localcloud_mirror=mirror_url)
    plan = render(config, ctx)
    session = Session(ip, login, host)
    wait_for("twin VM SSH", session.try_connect, 900)
    try:
        # exit 2: done with recoverable errors (cloud-init >= 23.4), as the build's connect accepts it
        session.run("cloud-init status --wait >/dev/null 2>&1 || true", step="cloud-init", timeout=1800)
        log("ours: recipe")
        started = time.monotonic()
        verify_error = None
        try:
            session.run_plan(plan, timeout=2400)
        except ProvisionError as e:
            if e.step != "verify":
                raise
            verify_error = str(e)  # the machine is still worth comparing; the report says so
        info = {
            "seconds": round(time.monotonic() - started),
            "ssh_round_trips": session.round_trips,
            "steps": {t.name: round(t.seconds) for t in session.timings},
            "verify_error": verify_error,
        }
        code, out = session.probe(COLLECT, step="parity", timeout=600)
        if "=== end" not in out:
            raise RuntimeError(f"reading the twin machine failed (exit {code})")
        return out, info
    finally:
        session.close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def task_summary(json_path: Path) -> dict[str, Any]:
    """Upstream's tasks on this run from Ansible's json callback: which ran, which skipped."""
    data = json.loads(json_path.read_text())
    ran, skipped = [], 0
    for play in data.get("plays", []):
        for task in play.get("tasks", []):
            res: dict[str, Any] = next(iter(task.get("hosts", {}).values()), {})
            if res.get("skipped"):
                skipped += 1
            else:
                ran.append(task["task"]["name"])
    return {"ran": ran, "skipped": skipped, "stats": data.get("stats", {})}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.parity", description=__doc__)
    ap.add_argument("--ansible-playbook", default=str(REPO / ".venv-parity/bin/ansible-playbook"))
    ap.add_argument("--report", type=Path, default=REPO / "docs/parity-report.md")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument(
        "--report-only", action="store_true", help="no VMs: compare the states an earlier run left in --workdir again"
    )
    ap.add_argument(
        "--only",
        choices=["upstream", "ours"],
        help="run one side into --workdir (the other's state already there, e.g. after a failed run)",
    )
    args = ap.parse_args(argv)
    if args.report_only:
        if args.workdir is None:
            print("--report-only needs --workdir", file=sys.stderr)
            return 2
        return write_report(args.workdir, args.report, None)
    if not (REFERENCE / "ansible/node.yml").exists():
        print(f"image-builder reference not found at {REFERENCE} (../shared beside the clone)", file=sys.stderr)
        return 2
    if not Path(args.ansible_playbook).exists():
        print(
            f"{args.ansible_playbook} missing: make parity installs ansible==8.7.0 into .venv-parity", file=sys.stderr
        )
        return 2
    work = args.workdir or Path(tempfile.mkdtemp(prefix="capi-parity-"))
    work.mkdir(parents=True, exist_ok=True)
    config = load_project("local")
    versions = load_versions(config.versions_path())
    var_file = json.loads(config.versions_path().read_text())
    populate_mirror(default_cache_dir())
    extras_dir = work / "extras"
    handler = functools.partial(QuietHandler, directory=str(extras_dir))
    httpd = http.server.ThreadingHTTPServer(("0.0.0.0", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    extras_url = f"http://10.0.2.2:{httpd.server_address[1]}"
    log(f"work dir {work}; extras at {extras_url}")
    started = dt.datetime.now(dt.UTC)
    settings = Settings(backend="qemu", state_dir=work / "localcloud")
    with LocalCloud(settings) as lc:
        client = Client(token="parity", api_endpoint=lc.endpoint)
        mirror = lookup_local_mirror(lc.endpoint, versions, "x86")
        upstream.write_extras(extras_dir, f"{mirror.guest_url}/registry")
        login = KeyPair.generate()
        key = client.ssh_keys.create(name="parity", public_key=login.public_openssh)
        servers: dict[str, Any] = {}
        hosts = {role: KeyPair.generate() for role in ("upstream", "ours") if args.only in (None, role)}
        results: dict[str, Any] = {}
        errors: dict[str, BaseException] = {}
        try:
            for role, host in hosts.items():
                r = client.servers.create(
                    name=f"parity-{role}",
                    server_type=ServerType(name=config.server_type),
                    image=Image(name=config.base_image),
                    location=Location(name=config.location),
                    ssh_keys=[key],
                    user_data=host_key_user_data(host),
                )
                assert r.server is not None
                servers[role] = r.server
            ips: dict[str, str] = {}
            for role, s in servers.items():
                wait_for(f"{role} server running", lambda s=s: client.servers.get_by_id(s.id).status == "running", 600)
                ips[role] = str(client.servers.get_by_id(s.id).public_net.ipv4.ip)

            def do_upstream() -> None:
                up = Upstream(work, ips["upstream"], login, hosts["upstream"])
                try:
                    up.connect(900)
                    results["upstream"] = up.run(
                        args.ansible_playbook,
                        upstream.packer_user_vars(REFERENCE, var_file, config.os),
                        mirror.guest_url,
                        extras_url,
                        extras_dir,
                    )
                    results["upstream_state"] = up.collect()
                    (work / "upstream.state").write_text(results["upstream_state"])
                    (work / "upstream-run.json").write_text(json.dumps(results["upstream"], default=str))
                except BaseException as e:  # reported after both threads end
                    errors["upstream"] = e
                finally:
                    up.close()

            def do_ours() -> None:
                try:
                    results["ours_state"], results["ours"] = run_ours(
                        ips["ours"], login, hosts["ours"], mirror.guest_url
                    )
                    # Saved at once, like the upstream side: the other side may still run for an hour.
                    (work / "ours.state").write_text(results["ours_state"])
                    (work / "ours-run.json").write_text(json.dumps(results["ours"]))
                except BaseException as e:  # reported after both threads end
                    errors["ours"] = e

            sides = {"upstream": do_upstream, "ours": do_ours}
            threads = [threading.Thread(target=fn) for role, fn in sides.items() if role in hosts]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        finally:
            for s in servers.values():
                client.servers.delete(s)
            client.ssh_keys.delete(key)
            httpd.shutdown()
    for role, e in errors.items():
        log(f"{role} failed: {e!r}")
    if errors:
        return 1
    if args.only:
        # one side only: the other's state is (or will be) in the work dir; compare with --report-only
        log(f"{args.only} side saved in {work}; compare with --report-only --workdir {work}")
        return 0
    return write_report(work, args.report, started)


def write_report(work: Path, report_path: Path, started: dt.datetime | None) -> int:
    config = load_project("local")
    upstream_run = json.loads((work / "upstream-run.json").read_text())
    ours_run = json.loads((work / "ours-run.json").read_text())
    upstream_state, ours_state = (work / "upstream.state").read_text(), (work / "ours.state").read_text()
    started = started or dt.datetime.fromtimestamp((work / "ours.state").stat().st_mtime, dt.UTC)
    differences = compare(parse(upstream_state), parse(ours_state), RULES, IGNORE)
    tasks = task_summary(Path(upstream_run["node.yml"]["json"]))
    (work / "upstream-tasks.json").write_text(json.dumps(tasks, indent=1))
    header = (
        f"# Parity report: image-builder {IMAGE_BUILDER_VERSION} vs this recipe\n\n"
        f"Generated by `make parity` on {started:%Y-%m-%d %H:%M} UTC (localcloud, {config.os} VMs, TCG; "
        f"var file `{config.versions}`). Upstream's `node.yml`: {len(tasks['ran'])} tasks ran, {tasks['skipped']} skipped, "
        f"{upstream_run['node.yml']['seconds']} s; this recipe {ours_run['seconds']} s "
        f"(steps: {', '.join(f'{k} {v}' for k, v in ours_run['steps'].items())}); both builds at the same time.\n"
        + (
            f"\nSSH round trips (commands and file transfers): upstream's `node.yml` "
            f"{upstream_run['node.yml']['ssh_round_trips']}, this recipe {ours_run['ssh_round_trips']}.\n"
            if "ssh_round_trips" in upstream_run["node.yml"] and "ssh_round_trips" in ours_run
            else ""
        )
        + (f"\nThis recipe's verify failed: {ours_run['verify_error']}\n" if ours_run["verify_error"] else "")
        + "\nIgnored as volatile or test-bed only (not differences of the recipes): "
        + "; ".join(sorted({r.reason for r in IGNORE}))
        + ".\n"
    )
    text = report(differences, header)
    report_path.write_text(text)
    log(f"report written to {report_path}; state and Ansible output kept in {work}")
    unexplained = [d for d in differences if d.reason is None]
    print(text if unexplained else f"parity: no unexplained difference ({len(differences)} explained)")
    return 1 if unexplained else 0
