"""builder/batch.py: the scripts that run several plan operations as one SSH command, run here
with the same bash the build server uses, and the reading of their output."""

from __future__ import annotations

import subprocess

from builder import batch
from provision.plan import Check, Put, Run


def _bash(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "--norc", "--noprofile", "-euo", "pipefail", "-c", script], capture_output=True, text=True
    )


def test_runs_stop_at_the_first_failure_and_name_it() -> None:
    mark = batch.boundary()
    commands = ["echo one", "true | true; echo two", "echo 'it''s' && exit 7", "echo never"]
    r = _bash(batch.runs_script(commands, mark))
    assert r.returncode == 7
    assert batch.failed_index(r.stdout, mark) == 2
    assert "never" not in r.stdout and "one" in r.stdout and "two" in r.stdout


def test_each_run_keeps_its_own_pipefail_and_errexit() -> None:
    mark = batch.boundary()
    # Alone, `false | true` fails under pipefail; in a batch it must fail the same way.
    r = _bash(batch.runs_script(["false | true", "echo after"], mark))
    assert r.returncode == 1 and batch.failed_index(r.stdout, mark) == 0
    ok = _bash(batch.runs_script(["true", "echo fine"], mark))
    assert ok.returncode == 0 and batch.failed_index(ok.stdout, mark) is None


def test_checks_all_run_with_their_own_output_and_exit_code() -> None:
    mark = batch.boundary()
    commands = ["echo -n no-newline", "printf 'a\\nb\\n'; exit 3", "true", "echo x >&2; echo out"]
    r = _bash(batch.checks_script(commands, mark))
    assert r.returncode == 0
    results = batch.check_results(r.stdout, mark, len(commands))
    assert [(x.exit_code, x.output.strip()) for x in results if x] == [
        (0, "no-newline"),
        (3, "a\nb"),
        (0, ""),
        (0, "out"),
    ]
    # Judged exactly as a check run alone would be.
    assert Check("lines", "", "lines", "a,b").judge(results[1].exit_code, results[1].output)
    assert Check("eq", "", "equals", "no-newline").judge(results[0].exit_code, results[0].output) is None


def test_a_cut_off_check_batch_leaves_the_rest_unjudged() -> None:
    mark = batch.boundary()
    r = _bash(batch.checks_script(["echo a", "kill -9 $PPID", "echo c"], mark))
    results = batch.check_results(r.stdout, mark, 3)
    assert results[0] is not None and results[1] is None and results[2] is None


def test_groups_keep_files_alone_and_split_on_environment_and_kind() -> None:
    ops = [
        Run("a"), Run("b"), Put("/f", b""), Run("c"), Run("d", env={"X": "1"}), Run("e", env={"X": "1"}),
        Run("f", kind="apt"), Run("g", kind="apt"), Run("h"), Check("1", "x"), Check("2", "y"), Run("i"),
    ]  # fmt: skip
    shape = [[getattr(op, "command", getattr(op, "path", "")) for op in g] for g in batch.groups(ops)]
    assert shape == [["a", "b"], ["/f"], ["c"], ["d", "e"], ["f", "g"], ["h"], ["x", "y"], ["i"]]
