"""Image tags and references typed into Slack are checked against the registry grammar."""

from __future__ import annotations

import pytest

from runbook.docker_ref import Reference, image_ref, parse_reference, validate_tag

GOOD_TAGS = [
    "v2",
    "v2.3.1",
    "latest",
    "2024-06-01",
    "_internal",
    "rc1_build.7-hotfix",
    "A" * 128,
    "1a2b3c4d5e6f",
    "V2",
]

BAD_TAGS = [
    ("", "empty"),
    ("v2;rm -rf /", "contains ';'"),
    ("v2 && curl x", "contains ' '"),
    ("$(id)", "contains '$'"),
    ("`id`", "contains '`'"),
    ("v2|sh", "contains '|'"),
    ("v2\n", "contains '\\n'"),
    ("-v2", "must start with"),
    (".v2", "must start with"),
    ("v2/evil", "contains '/'"),
    ("v2:latest", "contains ':'"),
    ("vé", "contains 'é'"),
    ("v2\u200b", "contains"),
    ("A" * 129, "too long"),
    ("..", "must start with"),
]


@pytest.mark.parametrize("tag", GOOD_TAGS)
def test_valid_tags_pass(tag: str) -> None:
    assert validate_tag(tag) == tag


@pytest.mark.parametrize(("tag", "reason"), BAD_TAGS)
def test_invalid_tags_fail_with_a_reason(tag: str, reason: str) -> None:
    with pytest.raises(ValueError, match=None) as err:
        validate_tag(tag)
    assert reason in str(err.value), f"{tag!r}: message {err.value!s} lacks {reason!r}"
    assert len(str(err.value)) < 200, "the message should be short enough for Slack"


GOOD_REFS = [
    ("paybox/app", Reference(None, "paybox/app")),
    ("127.0.0.1:5000/paybox/app:v2", Reference("127.0.0.1:5000", "paybox/app", "v2")),
    ("localhost/app", Reference("localhost", "app")),
    ("localhost:5000/app:v1", Reference("localhost:5000", "app", "v1")),
    ("registry.example.com/team/pay-box/app_x:1.0", Reference(
        "registry.example.com", "team/pay-box/app_x", "1.0")),
    ("ubuntu", Reference(None, "ubuntu")),
    ("a__b/c.d", Reference(None, "a__b/c.d")),
    ("a---b", Reference(None, "a---b")),
    ("[::1]:5000/app:v1", Reference("[::1]:5000", "app", "v1")),
    ("app@sha256:" + "a" * 64, Reference(None, "app", None, "sha256:" + "a" * 64)),
    ("r.io/app:v2@sha256:" + "0" * 64, Reference("r.io", "app", "v2", "sha256:" + "0" * 64)),
    ("Registry.Example.com/app", Reference("Registry.Example.com", "app")),
]


@pytest.mark.parametrize(("text", "expected"), GOOD_REFS)
def test_valid_references_parse(text: str, expected: Reference) -> None:
    ref = parse_reference(text)
    assert ref == expected
    assert str(ref) == text


BAD_REFS = [
    ("", "empty"),
    ("Paybox/App", "lowercase"),
    ("paybox/App:v2", "lowercase"),
    ("paybox//app", "empty path component"),
    ("paybox/../etc", "invalid"),
    ("paybox/app..x", "invalid"),
    ("paybox/.app", "invalid"),
    ("paybox/app-", "invalid"),
    ("paybox/app_", "invalid"),
    ("paybox/a___b", "invalid"),
    ("paybox app", "whitespace"),
    ("paybox/app:v2;id", "contains ';'"),
    ("paybox/äpp", "non-ASCII"),
    ("paybox/app@sha256:abc", "algorithm:hex"),
    ("paybox/app@sha256:" + "a" * 63 + "g", "algorithm:hex"),
    ("paybox/app@sha256:" + "a" * 66, "64 hex"),
    ("-bad.io/app", "registry host"),
    ("reg.io:port/app", "registry host"),
    ("paybox/app:", "empty"),
    ("a/" + "b" * 260, "too long"),
    ("127.0.0.1:5000/", "no repository"),
    ("paybox/app:-v2", "must start with"),
]


@pytest.mark.parametrize(("text", "reason"), BAD_REFS)
def test_invalid_references_fail_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_reference(text)
    assert reason in str(err.value), f"{text!r}: message {err.value!s} lacks {reason!r}"


def test_image_ref_joins_and_validates() -> None:
    assert image_ref("127.0.0.1:5000/paybox/app", "v2") == "127.0.0.1:5000/paybox/app:v2"
    with pytest.raises(ValueError, match="contains"):
        image_ref("127.0.0.1:5000/paybox/app", "v2 && reboot")
