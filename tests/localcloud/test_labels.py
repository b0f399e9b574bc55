"""Label validation and selector semantics (pure functions)."""

from __future__ import annotations

import pytest

from localcloud.errors import APIError
from localcloud.labels import label_key_problem, label_value_problem, parse_selector, selector_matches, validate_labels

LABELS = {"env": "prod", "tier": "web", "example.com/team": "infra", "flag": ""}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("env=prod", True),
        ("env==prod", True),
        ("env=stage", False),
        ("env!=stage", True),
        ("env!=prod", False),
        ("missing!=x", True),
        ("flag", True),
        ("missing", False),
        ("!missing", True),
        ("!env", False),
        ("env in (prod,stage)", True),
        ("env in (stage, dev)", False),
        ("env notin (stage,dev)", True),
        ("env notin (prod)", False),
        ("missing notin (a)", True),
        ("env=prod,tier=web", True),
        ("env=prod,tier=db", False),
        ("env in (prod,stage),tier!=db,!missing", True),
        ("example.com/team=infra", True),
    ],
)
def test_selector_semantics(selector: str, expected: bool) -> None:
    assert selector_matches(parse_selector(selector), LABELS) is expected


@pytest.mark.parametrize("selector", ["env=prod,", "env in (a", "=x", "env in ()", "a b c", "bad key!=x"])
def test_malformed_selectors_name_the_field(selector: str) -> None:
    with pytest.raises(APIError) as e:
        parse_selector(selector)
    assert e.value.code == "invalid_input"
    details = e.value.details
    assert details is not None
    assert [f["name"] for f in details["fields"]] == ["label_selector"]
    assert selector in details["fields"][0]["messages"][0]


@pytest.mark.parametrize(
    ("key", "ok"),
    [
        ("caph-image-name", True),
        ("k8s.io/role", True),
        ("a" * 63, True),
        ("a" * 64, False),
        ("-leading", False),
        ("trailing-", False),
        ("has space", False),
        ("plus+sign", False),
        ("UPPER/x", False),  # prefixes are DNS subdomains: lowercase
        ("/x", False),
    ],
)
def test_label_keys(key: str, ok: bool) -> None:
    assert (label_key_problem(key) is None) is ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("", True),
        ("v1.31.4", True),
        ("1.31.4-1.1", True),
        ("a" * 63, True),
        ("a" * 64, False),
        ("v1.31.4+k3s1", False),
        ("x/y", False),
    ],
)
def test_label_values(value: str, ok: bool) -> None:
    assert (label_value_problem("k", value) is None) is ok


def test_validate_labels_names_the_offending_label() -> None:
    with pytest.raises(APIError) as e:
        validate_labels({"good": "x", "bad": "v1+x"})
    assert "bad" in e.value.details["fields"][0]["messages"][0]


@pytest.mark.parametrize(
    "key",
    ["caph-image-name", "k8s.io/role", "a" * 63, "a" * 64, "-x", "x-", "a b", "x+y", "a_b.c-d", "UPPER/x", "/x", "x/"],
)
def test_the_emulator_and_the_sdk_agree_on_keys_but_for_the_documented_prefix_rule(key: str) -> None:
    from hcloud.helpers.labels import LabelValidator

    sdk_ok = LabelValidator.validate({key: ""})
    ours_ok = label_key_problem(key) is None
    if sdk_ok != ours_ok:
        # The one rule the SDK does not check: a prefix is a lowercase DNS subdomain.
        assert sdk_ok and not ours_ok and "/" in key, key


@pytest.mark.parametrize("value", ["", "v1.31.4", "a" * 63, "a" * 64, "v1+x", "x/y", "-x", "x-", "a_b"])
def test_the_emulator_and_the_sdk_agree_on_values(value: str) -> None:
    from hcloud.helpers.labels import LabelValidator

    assert LabelValidator.validate({"k": value}) == (label_value_problem("k", value) is None)
