"""The docs stay true: generated references match the code; the README and docs name no make
target, command, option, configuration field, file or page that does not exist."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer
from pydantic import BaseModel

from builder import docs as gen
from builder.cli import app
from builder.config import ProjectConfig

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
CODE = re.compile(r"`([^`\n]+)`")


def _text() -> dict[Path, str]:
    return {p: p.read_text() for p in PAGES}


@pytest.mark.parametrize("name", list(gen.FILES))
def test_generated_docs_are_current(name: str) -> None:
    assert (REPO / "docs" / name).read_text() == gen.FILES[name](), f"docs/{name} is stale: run make docs"


def test_make_targets_named_exist() -> None:
    makefile = (REPO / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][\w-]*):", makefile, flags=re.M))
    named = {
        (p.name, m)
        for p, t in _text().items()
        for span in CODE.findall(t)
        for m in re.findall(r"\bmake ([a-z][\w-]*)", span)
    }
    missing = sorted((page, m) for page, m in named if m not in targets)
    assert not missing, f"make targets named in the docs but not in the Makefile: {missing}"


def _commands() -> dict[str, set[str]]:
    group: Any = typer.main.get_command(app)
    out = {}
    for name, cmd in group.commands.items():
        out[name] = {o for p in cmd.params for o in [*getattr(p, "opts", []), *getattr(p, "secondary_opts", [])]}
    return out


def test_commands_and_options_named_exist() -> None:
    commands = _commands()
    problems = []
    for page, text in _text().items():
        for span in CODE.findall(text):
            m = re.match(r"capi-image (\w[\w-]*)(.*)", span)
            if not m:
                continue
            name, rest = m.groups()
            if name not in commands:
                problems.append(f"{page.name}: `{span}` — no command {name}")
                continue
            for opt in re.findall(r"(?<![\w-])(--[a-z][\w-]*|-[a-zA-Z])\b", rest):
                if opt not in commands[name] and opt not in ("--help", "-h"):
                    problems.append(f"{page.name}: `{span}` — {name} has no {opt}")
    assert not problems, "\n".join(problems)


def _field_paths(model: type[BaseModel], prefix: str = "") -> set[str]:
    out = set()
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        out.add(path)
        for t in (field.annotation, *getattr(field.annotation, "__args__", ())):
            if isinstance(t, type) and issubclass(t, BaseModel):
                out |= _field_paths(t, f"{path}.")
    return out


def test_configuration_fields_named_exist() -> None:
    fields = _field_paths(ProjectConfig)
    text = (REPO / "docs/configuration.md").read_text()
    problems = []
    for row in re.findall(r"^\| ([^|]+) \|", text, flags=re.M):
        keys = CODE.findall(row)
        if not keys:
            continue
        first = keys[0]
        parent = first.rpartition(".")[0]
        for key in keys:
            full = key if "." in key or not parent else f"{parent}.{key}"
            if full not in fields:
                problems.append(full)
    assert not problems, f"docs/configuration.md names fields the models do not have: {problems}"
    undocumented = sorted(f for f in fields if f not in text and f.count(".") < 2 and not f.startswith("localcloud."))
    assert not undocumented, f"fields missing from docs/configuration.md: {undocumented}"


def test_every_configuration_field_is_described() -> None:
    """The generated reference is only as good as the models' descriptions."""
    missing = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            if not field.description:
                missing.append(f"{prefix}{name}")
            for t in (field.annotation, *getattr(field.annotation, "__args__", ())):
                if isinstance(t, type) and issubclass(t, BaseModel):
                    walk(t, f"{prefix}{name}.")

    walk(ProjectConfig, "")
    assert not missing, f"fields without a description (Field(description=...)): {missing}"


REPO_PATH = re.compile(r"^(?:\.ci|builder|provision|localcloud|tests|config|docs)/[\w./*-]*$")


def test_files_and_pages_named_exist() -> None:
    problems = []
    for page, text in _text().items():
        for span in CODE.findall(text):
            path = span.split(":")[0].rstrip("/")
            named = REPO_PATH.match(path) and "<" not in path and "NAME" not in path
            if named and not list(REPO.glob(path)):
                problems.append(f"{page.name}: `{span}`")
        for link in re.findall(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)", text):
            if not (page.parent / link).exists():
                problems.append(f"{page.name}: link {link}")
    assert not problems, "named but missing:\n" + "\n".join(problems)
