from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from service.errors import EnvelopeError
from service.events.fields import (
    b64decode,
    first,
    int64,
    lenient_int,
    parse_json,
    str_mapping,
    text,
    timestamp,
)


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("1763762400123456", 1763762400123456),
        (1763762400123456, 1763762400123456),
        (" 42 ", 42),
        ("-1", -1),
        ("9223372036854775807", 2**63 - 1),
        ("-9223372036854775808", -(2**63)),
        (None, None),
        ("", None),
    ],
)
def test_int64_reads_strings_and_numbers(raw: Any, value: int | None) -> None:
    assert int64(raw, "generation") == value


@pytest.mark.parametrize(
    "raw",
    [
        True,
        1.0,
        1.5,
        "1.0",
        "1e3",
        "0x10",
        "\u0663",  # Arabic-Indic digit three: int() would accept it
        "\uff11\uff12",  # full-width digits one, two
        "9223372036854775808",
        2**63,
        "9" * 5000,  # beyond Python's int-from-text digit limit
        [],
        {},
    ],
)
def test_int64_refuses_what_is_not_an_int64(raw: Any) -> None:
    with pytest.raises(EnvelopeError, match="generation"):
        int64(raw, "generation")


def test_int64_errors_never_repeat_the_value() -> None:
    with pytest.raises(EnvelopeError) as refused:
        int64("secret-value", "size")
    assert "secret" not in str(refused.value)


def test_lenient_int_turns_the_unreadable_into_none() -> None:
    assert lenient_int("3") == 3
    assert lenient_int(1e400) is None
    assert lenient_int("three") is None


def test_text() -> None:
    assert text("a", "f") == "a"
    assert text("", "f") is None
    with pytest.raises(EnvelopeError, match="f is missing"):
        text(None, "f", required=True)
    with pytest.raises(EnvelopeError, match="f is not a string"):
        text(5, "f")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-11-21T22:00:00.123Z", datetime(2026, 11, 21, 22, 0, 0, 123000, UTC)),
        # Nanoseconds (Go's RFC 3339, as fake-gcs-server writes) are cut to microseconds.
        ("2026-11-21T22:00:00.123456789Z", datetime(2026, 11, 21, 22, 0, 0, 123456, UTC)),
        ("2026-11-21T23:00:00+01:00", datetime(2026, 11, 21, 22, 0, tzinfo=UTC)),
        ("2026-11-21T22:00:00", datetime(2026, 11, 21, 22, 0, tzinfo=UTC)),  # naive means UTC
        ("yesterday", None),
        ("", None),
        (1763762400, None),
        ("2" * 100, None),
    ],
)
def test_timestamp(raw: Any, expected: datetime | None) -> None:
    assert timestamp(raw) == expected


def test_timestamp_keeps_the_offset() -> None:
    parsed = timestamp("2026-11-21T23:00:00+01:00")
    assert parsed is not None
    assert parsed.utcoffset() == timedelta(hours=1)
    assert timestamp(datetime(2026, 1, 1)) == datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "encoded",
    [
        base64.b64encode(b"\xfb\xff{}").decode(),
        base64.urlsafe_b64encode(b"\xfb\xff{}").decode(),
        base64.b64encode(b"\xfb\xff{}").decode().rstrip("="),
    ],
)
def test_b64decode_accepts_standard_urlsafe_and_unpadded(encoded: str) -> None:
    assert b64decode(encoded, "data") == b"\xfb\xff{}"


@pytest.mark.parametrize("encoded", ["not base64!!", "a", 12, ["x"]])
def test_b64decode_refuses(encoded: Any) -> None:
    with pytest.raises(EnvelopeError, match="data"):
        b64decode(encoded, "data")


def test_b64decode_empty_is_empty() -> None:
    assert b64decode(None, "data") == b""
    assert b64decode("", "data") == b""


@pytest.mark.parametrize(
    "raw",
    [b"{", b"\xff\xfe\x00", b"[" * 100_000 + b"]" * 100_000, b"[" + b"1" * 5000 + b"]"],
    ids=["truncated", "not-utf", "deep-nesting", "huge-int"],
)
def test_parse_json_turns_every_failure_into_an_envelope_error(raw: bytes) -> None:
    with pytest.raises(EnvelopeError, match="body is not JSON"):
        parse_json(raw, "body")


def test_str_mapping_requires_string_values() -> None:
    assert str_mapping({"a": "1"}, "attributes") == {"a": "1"}
    assert str_mapping(None, "attributes") == {}
    with pytest.raises(EnvelopeError):
        str_mapping({"a": 1}, "attributes")
    with pytest.raises(EnvelopeError):
        str_mapping(["a"], "attributes")


def test_first_prefers_the_first_spelling_present() -> None:
    assert first({"message_id": "b", "messageId": "a"}, "messageId", "message_id") == "a"
    assert first({"message_id": "b"}, "messageId", "message_id") == "b"
    assert first({}, "messageId") is None
