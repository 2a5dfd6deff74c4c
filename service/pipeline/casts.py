"""Casting one column to its BigQuery type, vectorized, naming every value that does not fit.

Each function returns the converted values (bad ones null) and ``{row index: reason}``. The
fast path is one or two pyarrow.compute kernels per column; only a column that fails falls back
to checking value by value, to say exactly which rows are bad and why. Used by the validate
stage only.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation

import pyarrow as pa
import pyarrow.compute as pc

from service.models import Column

Failures = dict[int, str]
Converted = tuple[pa.Array, Failures]

# Arrow types that hold each BigQuery type (canonical names) on its way to Parquet.
ARROW_TYPES: dict[str, pa.DataType] = {
    "STRING": pa.string(),
    "INTEGER": pa.int64(),
    "FLOAT": pa.float64(),
    "NUMERIC": pa.decimal128(38, 9),
    "BOOLEAN": pa.bool_(),
    "TIMESTAMP": pa.timestamp("us", tz="UTC"),
    "DATE": pa.date32(),
    "DATETIME": pa.timestamp("us"),
    "BYTES": pa.binary(),
}
# Spellings BigQuery accepts for booleans in CSV, lower-cased.
TRUE_WORDS = pa.array(["true", "t", "1", "yes", "y"])
FALSE_WORDS = pa.array(["false", "f", "0", "no", "n"])
# A time zone at the end of a timestamp's text: Z, +01, +0100 or +01:00.
ZONE_SUFFIX = r"([zZ]|[+-]\d{2}(:?\d{2})?)$"
ZONE_PATTERN = re.compile(ZONE_SUFFIX)
ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError)


def arrow_schema(columns: tuple[Column, ...]) -> pa.Schema:
    return pa.schema(
        [pa.field(c.name, ARROW_TYPES[c.type], nullable=not c.required) for c in columns]
    )


def convert(raw: pa.Array, column: Column, *, text: bool, fmt: str | None = None) -> Converted:
    """Cast one column. ``text``: the values are text (CSV, JSON) rather than typed (Parquet)."""
    target = ARROW_TYPES[column.type]
    failed: Failures
    if pa.types.is_dictionary(raw.type):
        raw = raw.dictionary_decode()
    if pa.types.is_null(raw.type):
        values, failed = pa.nulls(len(raw), target), {}
    elif raw.type == target and not (text and column.type == "BYTES"):
        values, failed = raw, {}  # converted already (by the CSV reader, or typed in Parquet)
    elif pa.types.is_binary(raw.type) and column.type == "BYTES":
        values, failed = _base64(raw, column.name) if text else (raw, {})
    elif pa.types.is_binary(raw.type) or pa.types.is_large_binary(raw.type):
        as_text, failed = _utf8(raw, column.name)
        values, bad = _from_text(as_text, column, fmt)
        failed.update({i: r for i, r in bad.items() if i not in failed})
    elif pa.types.is_string(raw.type) or pa.types.is_large_string(raw.type):
        values, failed = _from_text(raw.cast(pa.string()), column, fmt)
    else:
        values, failed = _native(raw, column)
    if column.required and values.null_count:
        for i in _indices(pc.is_null(values)):
            failed.setdefault(i, f"{column.name}: required value is missing")
    return values, failed


def _from_text(text: pa.Array, column: Column, fmt: str | None) -> Converted:
    target = ARROW_TYPES[column.type]
    if fmt is not None:
        return _strptime(text, target, fmt, column)
    converter = CONVERTERS.get(column.type, _cast)
    return converter(text, target, column)


def _utf8(raw: pa.Array, name: str) -> Converted:
    try:
        return pc.cast(raw, pa.string()), {}
    except pa.ArrowInvalid:
        values: list[str | None] = []
        failed: Failures = {}
        for i, item in enumerate(raw.to_pylist()):
            try:
                values.append(None if item is None else bytes(item).decode("utf-8"))
            except UnicodeDecodeError:
                values.append(None)
                failed[i] = f"{name}: not valid UTF-8"
        return pa.array(values, pa.string()), failed


def _cast(text: pa.Array, target: pa.DataType, column: Column) -> Converted:
    try:
        return pc.cast(text, target), {}
    except ARROW_ERRORS:
        pass
    try:
        return pc.cast(pc.utf8_trim_whitespace(text), target), {}
    except ARROW_ERRORS:
        return _per_value(text, column)


def _boolean(text: pa.Array, target: pa.DataType, column: Column) -> Converted:
    lowered = pc.utf8_lower(pc.utf8_trim_whitespace(text))
    is_true = pc.is_in(lowered, value_set=TRUE_WORDS)
    known = pc.or_(is_true, pc.is_in(lowered, value_set=FALSE_WORDS))
    values = pc.if_else(known, is_true, pa.scalar(None, pa.bool_()))
    blank = pc.equal(pc.utf8_length(lowered), 0)
    bad_mask = pc.and_(pc.and_(pc.is_valid(text), pc.invert(known)), pc.invert(blank))
    failed = {
        i: f"{column.name}: {_clip(text[i].as_py())!r} is not a BOOLEAN" for i in _indices(bad_mask)
    }
    return values, failed


def _timestamp(text: pa.Array, target: pa.DataType, column: Column) -> Converted:
    """ISO 8601 with or without a zone (no zone means UTC).

    A cast whose format does not fit fails slowly in pyarrow (about a second per 400k
    values), so the first values choose the likely cast; mixed columns take two kernels.
    """
    sample = next((v for v in text.slice(0, 64).to_pylist() if v), None)
    if sample is not None:
        try:
            if ZONE_PATTERN.search(sample.strip()):
                return pc.cast(text, target), {}
            return _assume_utc(pc.cast(text, pa.timestamp("us")), target), {}
        except ARROW_ERRORS:
            pass
    try:
        trimmed = pc.utf8_trim_whitespace(text)
        zoned = pc.match_substring_regex(trimmed, ZONE_SUFFIX)
        none = pa.scalar(None, pa.string())
        with_zone = pc.cast(pc.if_else(zoned, trimmed, none), target)
        naive = pc.cast(pc.if_else(zoned, none, trimmed), pa.timestamp("us"))
        return pc.coalesce(with_zone, _assume_utc(naive, target)), {}
    except ARROW_ERRORS:
        return _per_value(text, column)


def _assume_utc(naive: pa.Array, target: pa.DataType) -> pa.Array:
    """Naive timestamps read as UTC: the same numbers, only the type changes."""
    return naive.cast(target) if target.tz is not None else naive


def _datetime(text: pa.Array, target: pa.DataType, column: Column) -> Converted:
    """DATETIME has no zone: a value with one is bad."""
    try:
        return pc.cast(text, target), {}
    except ARROW_ERRORS:
        return _per_value(text, column)


def _strptime(text: pa.Array, target: pa.DataType, fmt: str, column: Column) -> Converted:
    try:
        parsed = pc.strptime(pc.utf8_trim_whitespace(text), format=fmt, unit="us")
        return _time_as(parsed, target), {}
    except ARROW_ERRORS:
        return _per_value(
            text, column, lambda v: _as_type(datetime.strptime(v.strip(), fmt), column)
        )


def _time_as(parsed: pa.Array, target: pa.DataType) -> pa.Array:
    if pa.types.is_date(target):
        return pc.cast(parsed, target, safe=False)
    if target.tz is not None and parsed.type.tz is None:
        return _assume_utc(parsed, target)
    if target.tz is None and parsed.type.tz is not None:
        raise pa.ArrowInvalid("DATETIME values cannot carry a time zone")
    return pc.cast(parsed, target)


def _base64(raw: pa.Array, name: str) -> Converted:
    """BYTES in CSV and JSON are base64 text, as BigQuery reads them."""
    values: list[bytes | None] = []
    failed: Failures = {}
    for i, item in enumerate(raw.to_pylist()):
        try:
            values.append(None if item is None else base64.b64decode(item, validate=True))
        except (binascii.Error, ValueError):
            values.append(None)
            failed[i] = f"{name}: not valid base64"
    return pa.array(values, pa.binary()), failed


def _native(raw: pa.Array, column: Column) -> Converted:
    """Typed values (Parquet, JSON numbers and booleans) cast directly, checked for loss."""
    target = ARROW_TYPES[column.type]
    if raw.type == target:
        return raw, {}
    # BigQuery keeps microseconds: finer timestamps are truncated, as its loads do.
    safe = not (pa.types.is_timestamp(raw.type) and pa.types.is_timestamp(target))
    try:
        return pc.cast(raw, target, safe=safe), {}
    except ARROW_ERRORS:
        return _per_value(raw, column)


def _per_value(
    values: pa.Array, column: Column, parse: Callable[[str], object] | None = None
) -> Converted:
    parse = parse or PY_PARSERS[column.type]
    target = ARROW_TYPES[column.type]
    out: list[object] = []
    failed: Failures = {}
    blank_is_null = column.type not in ("STRING", "BYTES")
    for i, item in enumerate(values.to_pylist()):
        # As in BigQuery's CSV loads, an empty field of a non-string column is NULL.
        if item is None or (blank_is_null and isinstance(item, str | bytes) and not item.strip()):
            out.append(None)
            continue
        try:
            if isinstance(item, dict | list):
                raise ValueError("nested")
            out.append(parse(_as_text(item)))
        except (ValueError, TypeError, InvalidOperation, OverflowError):
            out.append(None)
            failed[i] = f"{column.name}: {_clip(item)!r} is not a valid {column.type}"
    return pa.array(out, target), failed


def _as_text(item: object) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, bytes):
        return item.decode("utf-8")
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, datetime | date):
        return item.isoformat()
    if isinstance(item, float) and item.is_integer():
        return str(int(item))  # 2.0 is the integer 2, as pyarrow's own cast writes it
    if isinstance(item, float | int | Decimal):
        return str(item)
    return json.dumps(item)


def _as_type(parsed: datetime, column: Column) -> object:
    if column.type == "DATE":
        return parsed.date()
    if column.type == "TIMESTAMP":
        return _utc(parsed)
    if parsed.tzinfo is not None:
        raise ValueError("DATETIME values cannot carry a time zone")
    return parsed


def _int64(value: str) -> int:
    number = int(value.strip())
    if not -(2**63) <= number < 2**63:
        raise OverflowError("out of INT64 range")
    return number


def _utc(parsed: datetime) -> datetime:
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _parse_timestamp(value: str) -> datetime:
    text = value.strip()
    if text.endswith(" UTC"):
        text = text[:-4] + "+00:00"
    return _utc(datetime.fromisoformat(text))


def _parse_datetime(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.strip())
    if parsed.tzinfo is not None:
        raise ValueError("DATETIME values cannot carry a time zone")
    return parsed


def _parse_decimal(value: str) -> Decimal:
    number = Decimal(value.strip())
    if not number.is_finite() or abs(number) >= Decimal(10) ** 29:
        raise ValueError("not a finite NUMERIC")
    return number.quantize(Decimal("1.000000000"))


def _parse_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in TRUE_WORDS.to_pylist():
        return True
    if lowered in FALSE_WORDS.to_pylist():
        return False
    raise ValueError("not a boolean")


# Python parsers for the slow path, by BigQuery type: exact reasons for bad values.
PY_PARSERS: dict[str, Callable[[str], object]] = {
    "STRING": str,
    "INTEGER": _int64,
    "FLOAT": lambda v: float(v.strip()),
    "NUMERIC": _parse_decimal,
    "BOOLEAN": _parse_bool,
    "TIMESTAMP": _parse_timestamp,
    "DATETIME": _parse_datetime,
    "DATE": lambda v: date.fromisoformat(v.strip()),
    "BYTES": lambda v: base64.b64decode(v, validate=True),
}
# Type-specific vectorized converters for text; other types use a plain cast.
CONVERTERS: dict[str, Callable[[pa.Array, pa.DataType, Column], Converted]] = {
    "BOOLEAN": _boolean,
    "TIMESTAMP": _timestamp,
    "DATETIME": _datetime,
}


def _indices(mask: pa.Array) -> list[int]:
    return [int(i) for i in pc.indices_nonzero(mask.fill_null(False)).to_pylist()]


def _clip(value: object, limit: int = 80) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "..."
