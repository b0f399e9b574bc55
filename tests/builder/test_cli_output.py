"""What the command line shows people: help written for a terminal (no reStructuredText, no
``<bool>`` metavars, an example per command, ``-h``, ``--version``), NO_COLOR honoured on a real
terminal, and full image names off a terminal."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from builder.cli import app
from builder.cliopts import OsProfile
from localcloud.__main__ import app as localcloud_app
from provision.profiles import PROFILES

from ..buildkit import STUB_PROJECT, cli_env, project, run_build, stub_cloud, write_project

COMMANDS = sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
LOCALCLOUD_COMMANDS = sorted(typer.main.get_command(localcloud_app).commands)  # type: ignore[attr-defined]


def test_every_command_is_covered() -> None:
    assert {"build", "gc", "images", "init", "manifests", "plan", "prune", "summary"} <= set(COMMANDS)


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_reads_like_a_terminal_tool(command: str) -> None:
    r = CliRunner().invoke(app, [*command.split(), "-h"], env={"NO_COLOR": "1"})
    assert r.exit_code == 0, r.output
    assert "``" not in r.output and "<bool>" not in r.output
    assert "Examples:" in r.output or "Start here:" in r.output
    assert "\x1b[" not in r.output


@pytest.mark.parametrize("command", ["", *LOCALCLOUD_COMMANDS])
def test_localcloud_help_has_no_markup_and_describes_every_option(command: str) -> None:
    r = CliRunner().invoke(localcloud_app, [*command.split(), "--help"])
    assert r.exit_code == 0, r.output
    assert "``" not in r.output and "<bool>" not in r.output
    lines = r.output.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("  --"):  # its description beside it, or (a long option) on the next line
            described = re.search(r"\S\s{2,}\S", line) or (i + 1 < len(lines) and lines[i + 1].startswith(" " * 10))
            assert described, line


def test_the_os_choices_are_the_profiles() -> None:
    assert [o.value for o in OsProfile] == list(PROFILES)


def test_version() -> None:
    r = subprocess.run([sys.executable, "-m", "builder.cli", "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and re.fullmatch(r"capi-image \d+\.\d+\.\d+\S*\n", r.stdout), r.stdout


def on_a_terminal(args: list[str], env: dict[str, str]) -> bytes:
    """Run the CLI with stdout and stderr on a pseudo-terminal; what it wrote there."""
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.execve(sys.executable, [sys.executable, "-m", "builder.cli", *args], {**env, "TERM": "xterm-256color"})
    out = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.waitpid(pid, 0)
    return out


def test_no_color_and_full_names(tmp_path: Path) -> None:
    name = "k8s-{kubernetes_semver}-{os}-{arch}-copied-whole-{build_id}"  # a row wider than 80 columns
    with stub_cloud() as lc:
        out = run_build(lc, project(lc.endpoint, image_name=name), tmp_path)
        assert out.result is not None and out.result.image_name, out.error
        full = out.result.image_name
        write_project(tmp_path / "config", "p", STUB_PROJECT)
        env = cli_env(tmp_path / "config", lc.endpoint)
        # off a terminal: a plain table, every name whole (before: cut at 80 columns)
        piped = subprocess.run(
            [sys.executable, "-m", "builder.cli", "images", "-p", "p"], env=env, capture_output=True, text=True
        )
        assert piped.returncode == 0, piped.stderr
        assert full in piped.stdout and "\x1b[" not in piped.stdout
        # on a terminal: a rich table, with escape codes unless NO_COLOR says otherwise
        colored = on_a_terminal(["images", "-p", "p"], {k: v for k, v in env.items() if k != "NO_COLOR"})
        assert b"\x1b[" in colored, colored[:500]
        plain = on_a_terminal(["images", "-p", "p"], {**env, "NO_COLOR": "1"})
        assert b"status" in plain and b"\x1b[" not in plain, plain[:500]


def test_start_up_imports_no_schema_validator() -> None:
    """Every command (``--help`` too) starts without jsonschema: its format checkers build a
    grammar at import (1.5 s, most of the CLI's start-up before); only writing or reading an
    SBOM needs the validator, and imports it then."""
    code = "import sys, builder.cli; print(sorted(m for m in sys.modules if m.split('.')[0] in ('jsonschema', 'rfc3987_syntax')))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert r.stdout.strip() == "[]", r.stdout
