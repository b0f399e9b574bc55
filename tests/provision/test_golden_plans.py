"""The rendered recipe for every OS profile and architecture equals its golden plan; a change
to the recipe fails here with a readable diff until the golden files are regenerated."""

from __future__ import annotations

import pytest

from provision.steps import sysprep

from .. import golden

CASES = golden.cases()


@pytest.mark.parametrize("name", sorted(CASES))
def test_plan_equals_its_golden_file(name: str) -> None:
    assert golden.path(name).exists(), f"no golden plan for {name}: run `{golden.REGENERATE}`"
    problem = golden.diff(name, CASES[name])
    assert problem is None, f"the rendered plan of {name} differs from its golden file:\n{problem}"


def test_a_one_line_recipe_change_shows_as_a_readable_diff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sysprep, "HOSTS", sysprep.HOSTS.replace("localhost.local", "localhost.localdomain"))
    problem = golden.diff("prod-ubuntu-2404-x86", CASES["prod-ubuntu-2404-x86"])
    assert problem is not None
    assert "--- golden/plan-prod-ubuntu-2404-x86.json" in problem
    removed = [line for line in problem.splitlines() if line.startswith("-") and "127.0.0.1" in line]
    added = [line for line in problem.splitlines() if line.startswith("+") and "127.0.0.1" in line]
    assert len(removed) == len(added) == 1  # one line changed, one line shown
    assert '"content": "127.0.0.1 localhost localhost.local\\n' in removed[0]
    assert '"content": "127.0.0.1 localhost localhost.localdomain\\n' in added[0]
    assert golden.REGENERATE in problem


def test_every_profile_and_architecture_is_pinned() -> None:
    names = set(CASES)
    for profile in ("ubuntu-2404", "ubuntu-2204", "debian-12", "debian-13"):
        assert {f"prod-{profile}-x86", f"prod-{profile}-arm"} <= names
    assert sorted(p.name for p in golden.GOLDEN_DIR.glob("plan-*.json")) == sorted(
        golden.path(n).name for n in names
    ), f"stale golden files: run `{golden.REGENERATE}`"
