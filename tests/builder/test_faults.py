"""Every API call of a build x every kind of fault: transient ones are absorbed, the others fail
the build with a message naming the call, and nothing is ever leaked or duplicated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from builder.cloud import Cloud, make_client
from builder.errors import CleanupIncompleteError, CloudError
from builder.ops.gc import collect
from localcloud.server import LocalCloud

from ..buildkit import BUILD_TIMES, CALLS, FAST_RETRY, FAST_TIMEOUTS, NO_LEAKS, leftovers, project, run_build, snapshots
from ..localclouds import LocalClouds

TRANSIENT: dict[str, dict[str, Any]] = {
    "429": {"code": "rate_limit_exceeded"},
    "429-bare": {"status": 429, "bare": True},
    "503": {"code": "unavailable"},
    "500": {"code": "server_error"},
    "409": {"code": "conflict"},
    "423": {"code": "locked"},
    "drop": {"kind": "drop"},
}

# Calls that create an action, and what the build does when that action ends in error.
ACTION_ERRORS: list[tuple[str, str, str, str | None]] = [
    ("create server", "POST", r"^/v1/servers$", "create server"),
    ("shutdown server", "POST", r"/actions/shutdown$", None),  # falls back to poweroff
    ("create image", "POST", r"/actions/create_image$", "create image"),
    ("delete server", "DELETE", r"^/v1/servers/\d+$", None),  # cleanup asks again
]


@pytest.fixture
def lc(localclouds: LocalClouds) -> LocalCloud:
    return localclouds.start(action_times=BUILD_TIMES)


def _check_no_leaks_no_duplicates(lc: LocalCloud, succeeded: bool) -> None:
    assert leftovers(lc) == NO_LEAKS
    assert len(snapshots(lc)) == (1 if succeeded else 0)


@pytest.mark.parametrize("fault", list(TRANSIENT))
@pytest.mark.parametrize(("call", "method", "path"), CALLS, ids=[c[0] for c in CALLS])
def test_transient_fault_is_absorbed(
    lc: LocalCloud, tmp_path: Path, call: str, method: str, path: str, fault: str
) -> None:
    rule = lc.admin().add_fault(method=method, path=path, **TRANSIENT[fault])
    out = run_build(lc, project(lc.endpoint), tmp_path)
    assert out.error is None, f"{call} x {fault}: {out.error}"
    assert [f["fired"] for f in lc.admin().faults() if f["id"] == rule["id"]] == [1], "the fault never fired"
    _check_no_leaks_no_duplicates(lc, succeeded=True)


@pytest.mark.parametrize(
    ("call", "method", "path"), [c for c in CALLS if c[1] != "GET"], ids=[c[0] for c in CALLS if c[1] != "GET"]
)
def test_lost_answer_never_duplicates(lc: LocalCloud, tmp_path: Path, call: str, method: str, path: str) -> None:
    """The call takes effect, the answer is lost: the retry must find what the first one made."""
    lc.admin().add_fault(method=method, path=path, kind="drop_after")
    out = run_build(lc, project(lc.endpoint), tmp_path)
    assert out.error is None, f"{call}: {out.error}"
    _check_no_leaks_no_duplicates(lc, succeeded=True)
    posts = [
        r for r in lc.admin().requests() if r["method"] == "POST" and r["path"] == "/v1/servers" and r["status"] < 300
    ]
    assert len(posts) == 1


@pytest.mark.parametrize(("call", "method", "path", "fails_as"), ACTION_ERRORS, ids=[a[0] for a in ACTION_ERRORS])
def test_action_ending_in_error(
    lc: LocalCloud, tmp_path: Path, call: str, method: str, path: str, fails_as: str | None
) -> None:
    lc.admin().add_fault(method=method, path=path, kind="action_error")
    out = run_build(lc, project(lc.endpoint), tmp_path)
    if fails_as is None:
        assert out.error is None, f"{call}: {out.error}"
    else:
        assert isinstance(out.error, CloudError), out.error
        assert fails_as in str(out.error)
        assert out.manifest["result"] == "failure"
        assert out.manifest["cleanup"] == "complete"
    _check_no_leaks_no_duplicates(lc, succeeded=fails_as is None)


@pytest.mark.parametrize(
    ("call", "method", "path"),
    [
        c
        for c in CALLS
        if c[0] in ("look up server type", "create SSH key", "create server", "create image", "get server")
    ],
    ids=lambda v: v if isinstance(v, str) and " " in v else "",
)
def test_persistent_fault_fails_naming_the_call(
    lc: LocalCloud, tmp_path: Path, call: str, method: str, path: str
) -> None:
    # Only the build's own use of the call fails for good; cleanup's deletes still work.
    lc.admin().add_fault(method=method, path=path, times=0, code="unavailable")
    out = run_build(lc, project(lc.endpoint), tmp_path)
    # Cleanup confirms a server's deletion by its delete action, so even without
    # GET /servers/{id} nothing is left and the build's own error is the answer.
    assert isinstance(out.error, CloudError), out.error
    assert str(out.error).startswith(call), str(out.error)
    assert "unavailable" in str(out.error)
    # What Hetzner's support asks for: the correlation id of the failed request, in the message.
    assert out.error.code == "unavailable"
    assert out.error.correlation_id and str(out.error).endswith(f"(correlation id {out.error.correlation_id})")
    _check_no_leaks_no_duplicates(lc, succeeded=False)


def test_undeletable_resources_are_reported_and_gc_removes_them(lc: LocalCloud, tmp_path: Path) -> None:
    lc.admin().add_fault(method="DELETE", path=r"^/v1/ssh_keys/\d+$", times=0, code="unavailable")
    out = run_build(lc, project(lc.endpoint), tmp_path)
    assert isinstance(out.error, CleanupIncompleteError)
    assert "capi-image gc" in str(out.error)
    assert out.manifest["cleanup"].startswith("incomplete")
    assert leftovers(lc)["ssh_keys"] == [f"capi-image-{out.build_id}"]
    lc.admin().clear_faults()
    _gc_everything(lc)
    assert leftovers(lc) == NO_LEAKS
    assert len(snapshots(lc)) == 1  # the published image is not garbage


@pytest.mark.parametrize("fault", ["503", "drop", "429-bare"])
@pytest.mark.parametrize(("call", "path"), [("find servers", r"^/v1/servers$"), ("find SSH keys", r"^/v1/ssh_keys$")])
def test_cleanup_label_search_survives_transient_faults(
    lc: LocalCloud, tmp_path: Path, call: str, path: str, fault: str
) -> None:
    """After a failure, cleanup also searches by label; those list calls are retried too."""
    lc.admin().add_fault(method="POST", path=r"/actions/create_image$", kind="action_error")
    rule = lc.admin().add_fault(method="GET", path=path, **TRANSIENT[fault])
    out = run_build(lc, project(lc.endpoint), tmp_path)
    assert isinstance(out.error, CloudError)
    assert "create image" in str(out.error)
    assert out.manifest["cleanup"] == "complete"
    assert [f["fired"] for f in lc.admin().faults() if f["id"] == rule["id"]] == [1]
    _check_no_leaks_no_duplicates(lc, succeeded=False)


def _gc_everything(lc: LocalCloud) -> None:
    import datetime as dt

    client, counter = make_client("test-token", lc.endpoint)
    report = collect(Cloud(client, counter, FAST_RETRY), dt.timedelta(0))
    assert report.failed == []


# A create whose answer is lost, and the label search that should find it down for good.
LOST_AND_UNSEARCHABLE = [
    ("server", [("POST", r"^/v1/servers$", {"kind": "drop_after"}),
                ("GET", r"^/v1/servers$", {"times": 0, "code": "unavailable"})]),
    ("ssh key", [("POST", r"^/v1/ssh_keys$", {"kind": "drop_after"}),
                 ("GET", r"^/v1/ssh_keys$", {"times": 0, "code": "unavailable"})]),
    ("snapshot", [("POST", r"/actions/create_image$", {"kind": "drop_after"}),
                  ("GET", r"^/v1/images$", {"nth": 4, "times": 0, "code": "unavailable"})]),
]  # fmt: skip


@pytest.mark.parametrize(("what", "rules"), LOST_AND_UNSEARCHABLE, ids=[c[0] for c in LOST_AND_UNSEARCHABLE])
def test_a_label_search_that_cannot_run_is_no_all_clear(
    lc: LocalCloud, tmp_path: Path, what: str, rules: list[tuple[str, str, dict[str, Any]]]
) -> None:
    """The create took effect but its answer was lost, and listing by label keeps failing: the
    build cannot know whether something is left, so it must say so (exit 3), not "complete"."""
    for method, path, spec in rules:
        lc.admin().add_fault(method=method, path=path, **spec)
    out = run_build(lc, project(lc.endpoint), tmp_path)
    left = leftovers(lc)
    assert left != NO_LEAKS, "the fault combination did not leave anything: the test proves nothing"
    assert isinstance(out.error, CleanupIncompleteError), out.error
    assert "by label failed" in str(out.error) and "capi-image gc" in str(out.error)
    assert out.manifest["cleanup"].startswith("incomplete")
    lc.admin().clear_faults()
    _gc_everything(lc)
    _check_no_leaks_no_duplicates(lc, succeeded=False)


@pytest.mark.parametrize(
    ("what", "path"), [("SSH key", r"^/v1/ssh_keys/\d+$"), ("snapshot", r"^/v1/images/\d+$")], ids=["key", "snapshot"]
)
def test_a_delete_that_always_answers_404_is_exit_3_naming_it(
    lc: LocalCloud, tmp_path: Path, what: str, path: str
) -> None:
    """DELETE answers not_found although nothing is ever deleted: the resource is still listed,
    the DELETE is repeated until the deadline, then the build says what is left (exit 3)."""
    if what == "snapshot":  # publishing fails: cleanup deletes the unpublished snapshot
        lc.admin().add_fault(method="PUT", path=r"^/v1/images/\d+$", times=0, code="invalid_input")
    lc.admin().add_fault(method="DELETE", path=path, times=0, code="not_found")
    out = run_build(lc, project(lc.endpoint), tmp_path)
    assert isinstance(out.error, CleanupIncompleteError), out.error
    assert "answered not_found, but it is still there" in str(out.error) and what in str(out.error)
    assert out.manifest["cleanup"].startswith("incomplete")
    lc.admin().clear_faults()
    _gc_everything(lc)
    assert leftovers(lc) == NO_LEAKS


# Two false 404s in a row about one resource: to its DELETE and to the GET that checks it.
DOUBLE_404 = [
    ("SSH key", r"^/v1/ssh_keys/\d+$"),
    ("snapshot", r"^/v1/images/\d+$"),
]


@pytest.mark.parametrize(("what", "path"), DOUBLE_404, ids=["key", "snapshot"])
def test_two_false_404s_in_a_build_leak_nothing(lc: LocalCloud, tmp_path: Path, what: str, path: str) -> None:
    """Before: exit 0 (key) or 1 (snapshot) with the resource left. The label search still lists
    it, so the DELETE is sent again: nothing is left, and the exit says what the build did."""
    if what == "snapshot":
        lc.admin().add_fault(method="PUT", path=r"^/v1/images/\d+$", times=0, code="invalid_input")
    lc.admin().add_fault(method="DELETE", path=path, times=1, code="not_found")
    lc.admin().add_fault(method="GET", path=path, times=1, code="not_found")
    out = run_build(lc, project(lc.endpoint), tmp_path)
    assert (out.error is None) if what == "SSH key" else isinstance(out.error, CloudError), out.error
    assert not isinstance(out.error, CleanupIncompleteError)
    lc.admin().clear_faults()
    assert leftovers(lc) == NO_LEAKS
    assert snapshots(lc) == ([] if what == "snapshot" else snapshots(lc))


def test_two_false_404s_about_a_server_leak_nothing(lc: LocalCloud) -> None:
    """The same for a server (it costs money by the hour), on the resource layer: its GETs during
    a build are too many to aim a fault at the one cleanup sends."""
    from builder.config import Timeouts
    from builder.resources import Resources

    from ..localcloud.servers import make_server

    client, counter = make_client("test-token", lc.endpoint)
    server = make_server(client, "doomed", labels={"created-by": "capi-image", "build-id": "f4f4"}).server
    lc.admin().add_fault(method="DELETE", path=r"^/v1/servers/\d+$", times=1, code="not_found")
    lc.admin().add_fault(method="GET", path=r"^/v1/servers/\d+$", times=1, code="not_found")
    res = Resources(
        Cloud(client, counter, FAST_RETRY), Timeouts(api_action=20), {"created-by": "capi-image", "build-id": "f4f4"}
    )
    res.delete_server(server.id)
    assert lc.admin().state()["servers"] == []


def test_a_create_carried_out_after_the_client_gave_up_is_found_and_said(lc: LocalCloud, tmp_path: Path) -> None:
    """POST /ssh_keys is carried out seconds after the client's read timeout; the retry made
    another key. Before: exit 0, and the late key appeared after cleanup and stayed. Now cleanup
    watches the label search for ``timeouts.settle`` seconds and the result says a create went
    unanswered."""
    import json

    from builder.pipeline import Build

    lc.admin().add_fault(method="POST", path=r"^/v1/ssh_keys$", kind="delay", seconds=6, times=1)
    client, counter = make_client("test-token", lc.endpoint, timeout=(5, 1))
    cfg = project(lc.endpoint, timeouts={**FAST_TIMEOUTS.model_dump(), "settle": 10})
    build = Build(cfg, Cloud(client, counter, cfg.retry, poll_initial=cfg.polling.initial), endpoint=lc.endpoint,
                  manifest_path=tmp_path / "m.json")  # fmt: skip
    result = build.run()
    assert result.unanswered_create
    manifest = json.loads((tmp_path / "m.json").read_text())
    assert manifest["unanswered_creates"] == ["create SSH key"]
    assert manifest["cleanup"].startswith("complete; an API create never got its answer")
    lc.admin().settle()
    assert leftovers(lc) == NO_LEAKS
