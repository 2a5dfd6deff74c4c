"""Casting columns to BigQuery types: vectorized, and every bad value named with its reason."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal

import pyarrow as pa
import pytest

from service.models import Column
from service.pipeline.casts import CastRule, convert


def cast(
    values: list[object],
    kind: str,
    *,
    mode: str = "NULLABLE",
    text: bool = True,
    source: pa.DataType | None = None,
    formats: tuple[str, ...] = (),
    decimal_separator: str | None = None,
) -> tuple[list[object], dict[int, str]]:
    raw = pa.array(values, source or pa.binary())
    rule = CastRule(formats, decimal_separator)
    out, failed = convert(raw, Column("c", kind, mode), text=text, rule=rule)
    return out.to_pylist(), failed


def test_integers_and_floats_with_spaces_and_bad_values() -> None:
    values, failed = cast([b"1", b" 2 ", b"x", None, b"9223372036854775808"], "INTEGER")
    assert values == [1, 2, None, None, None]
    assert set(failed) == {2, 4}
    assert "'x' is not a valid INTEGER" in failed[2]
    values, failed = cast([b"1.5", b"1e3", b"", b"abc"], "FLOAT")
    assert values == [1.5, 1000.0, None, None]
    assert list(failed) == [3]


def test_an_empty_field_of_a_non_string_column_is_null() -> None:
    assert cast([b"", b"  ", b"3"], "INTEGER") == ([None, None, 3], {})
    assert cast([b""], "STRING") == ([""], {})


def test_booleans_as_bigquery_spells_them() -> None:
    values, failed = cast([b"true", b"F", b"yes", b"0", b"maybe", b""], "BOOLEAN")
    assert values == [True, False, True, False, None, None]
    assert list(failed) == [4]


def test_timestamps_with_and_without_zones() -> None:
    values, failed = cast(
        [b"2026-11-20T08:15:00Z", b"2026-11-20 10:30:00", b"2026-11-20T11:45:00+01:00"],
        "TIMESTAMP",
    )
    assert failed == {}
    assert values == [
        datetime(2026, 11, 20, 8, 15, tzinfo=UTC),
        datetime(2026, 11, 20, 10, 30, tzinfo=UTC),
        datetime(2026, 11, 20, 10, 45, tzinfo=UTC),
    ]


def test_naive_timestamps_alone_are_read_as_utc() -> None:
    values, failed = cast([b"2026-11-20 10:30:00.123456"] * 3, "TIMESTAMP")
    assert failed == {}
    assert values[0] == datetime(2026, 11, 20, 10, 30, 0, 123456, tzinfo=UTC)


def test_a_bad_timestamp_costs_its_row_only() -> None:
    values, failed = cast(
        [b"2026-11-20T08:15:00Z", b"yesterday", b"2026-11-20 08:15:00 UTC"], "TIMESTAMP"
    )
    assert values[0] == values[2] == datetime(2026, 11, 20, 8, 15, tzinfo=UTC)
    assert list(failed) == [1]


def test_datetime_refuses_a_zone_and_date_refuses_a_time() -> None:
    values, failed = cast([b"2026-11-20T08:15:00", b"2026-11-20T08:15:00Z"], "DATETIME")
    assert values[0] == datetime(2026, 11, 20, 8, 15)
    assert list(failed) == [1]
    values, failed = cast([b"2026-11-20", b"2026-11-20T00:00:00", b"2026-02-30"], "DATE")
    assert values == [date(2026, 11, 20), None, None]
    assert list(failed) == [1, 2]


def test_numeric_keeps_nine_decimals() -> None:
    values, failed = cast([b"19.99", b"1e2", b"0.1234567891", b"nan"], "NUMERIC")
    assert values[:3] == [Decimal("19.99"), Decimal("100"), Decimal("0.123456789")]
    assert list(failed) == [3]


def test_required_values_must_be_there() -> None:
    values, failed = cast([b"1", None, b""], "INTEGER", mode="REQUIRED")
    assert values == [1, None, None]
    assert failed == {1: "c: required value is missing", 2: "c: required value is missing"}


def test_invalid_utf8_is_a_bad_row() -> None:
    values, failed = cast([b"ok", b"\xff\xfe bad", b"\xc3\xa9"], "STRING")
    assert values == ["ok", None, "é"]
    assert failed == {1: "c: not valid UTF-8"}


def test_bytes_in_text_files_are_base64() -> None:
    values, failed = cast([b"aGVsbG8=", b"not base64!"], "BYTES")
    assert values == [b"hello", None]
    assert list(failed) == [1]


def test_a_strptime_format_from_a_cast_transform() -> None:
    values, failed = cast([b"20/11/2026", b"2026-11-20"], "DATE", formats=("%d/%m/%Y",))
    assert values == [date(2026, 11, 20), None]
    assert failed == {1: "c: '2026-11-20' matches none of the formats %d/%m/%Y"}
    values, _ = cast([b"20/11/2026 08:00"], "TIMESTAMP", formats=("%d/%m/%Y %H:%M",))
    assert values == [datetime(2026, 11, 20, 8, tzinfo=UTC)]


def test_several_formats_the_first_that_parses_wins() -> None:
    formats = ("%Y-%m-%d", "%d/%m/%Y")
    values, failed = cast(
        [b"2026-11-20", b"20/11/2026", b"", b"11.20.2026"], "DATE", formats=formats
    )
    assert values == [date(2026, 11, 20), date(2026, 11, 20), None, None]
    assert failed == {3: "c: '11.20.2026' matches none of the formats %Y-%m-%d, %d/%m/%Y"}
    # 01/02/2026 reads with the first format that parses it: day first here.
    values, _ = cast([b"01/02/2026"], "DATE", formats=("%d/%m/%Y", "%m/%d/%Y"))
    assert values == [date(2026, 2, 1)]


def test_decimal_commas_by_option() -> None:
    values, failed = cast([b"12,50", b"-0,5", b"3", b"1.234,50"], "NUMERIC", decimal_separator=",")
    assert values == [Decimal("12.5"), Decimal("-0.5"), Decimal(3), None]
    assert list(failed) == [3]  # a grouping point is not guessed away
    assert cast([b"12,50"], "FLOAT", decimal_separator=",") == ([12.5], {})
    assert list(cast([b"12,50"], "FLOAT")[1]) == [0]  # without the option, a bad value


def test_time_bignumeric_json_and_geography_from_text() -> None:
    assert cast([b"08:15:00.5", b"25:00"], "TIME")[0] == [time(8, 15, 0, 500000), None]
    big = b"123456789012345678901234567890.12345678901234567890123456789012345678"
    values, failed = cast([big, b"1e40"], "BIGNUMERIC")
    assert values[0] == Decimal(big.decode()) and failed.keys() == {1}
    values, failed = cast([b'{"a": [1, 2]}', b"{nope", b"3"], "JSON")
    assert values == ['{"a": [1, 2]}', None, "3"] and list(failed) == [1]
    values, failed = cast(
        [b"POINT(1 2)", b'{"type": "Point", "coordinates": [1, 2]}', b"here"], "GEOGRAPHY"
    )
    assert values[:2] == ["POINT(1 2)", '{"type": "Point", "coordinates": [1, 2]}']
    assert failed == {2: "c: 'here' is not a valid GEOGRAPHY"}


def test_a_nested_value_in_a_string_or_json_column_is_kept_as_json_text() -> None:
    nested: list[object] = [{"a": 1, "b": ["x"]}, None]
    source = pa.struct([("a", pa.int64()), ("b", pa.list_(pa.string()))])
    for kind in ("STRING", "JSON"):
        values, failed = cast(nested, kind, text=False, source=source)
        assert values == ['{"a": 1, "b": ["x"]}', None] and failed == {}


@pytest.mark.parametrize(
    ("values", "source", "kind", "expected"),
    [
        ([1, 2], pa.int32(), "INTEGER", [1, 2]),
        ([1.5], pa.float32(), "FLOAT", [1.5]),
        ([1, 2], pa.int64(), "STRING", ["1", "2"]),
        ([True], pa.bool_(), "BOOLEAN", [True]),
        (
            [datetime(2026, 1, 1, 0, 0, 0, 1)],
            pa.timestamp("ns", tz="UTC"),
            "TIMESTAMP",
            [datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=UTC)],
        ),
        ([b"\x00\x01"], pa.binary(), "BYTES", [b"\x00\x01"]),
    ],
)
def test_typed_values_cast_directly(
    values: list[object], source: pa.DataType, kind: str, expected: list[object]
) -> None:
    assert cast(values, kind, text=False, source=source) == (expected, {})


def test_typed_values_that_do_not_fit_are_bad_rows() -> None:
    values, failed = cast([1, 2**40], "INTEGER", text=False, source=pa.int64())
    assert failed == {}
    values, failed = cast([1.5, 2.0], "INTEGER", text=False, source=pa.float64())
    assert values == [None, 2] and list(failed) == [0]
    nested = pa.array([{"a": 1}, None], pa.struct([("a", pa.int64())]))
    out, failed = convert(nested, Column("c", "INTEGER"), text=False)
    assert out.to_pylist() == [None, None] and list(failed) == [0]
