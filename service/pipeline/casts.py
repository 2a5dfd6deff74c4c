"""Casting one column to its BigQuery type, vectorized, naming every value that does not fit.

Each function returns the converted values (bad ones null) and ``{row index: reason}``. The
fast path is one or two pyarrow.compute kernels per column; only a column that fails falls back
to checking value by value, to say exactly which rows are bad and why. Used by the validate
stage only (RECORD and REPEATED columns: nested.py, which casts their leaves here).

The per-value parsers of the slow path, which name exact reasons, are value_parsers.py's.

Longer than 300 lines: one vectorized converter per BigQuery type, and the tables that list
them all.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import InvalidOperation

import pyarrow as pa
import pyarrow.compute as pc

from service.bigquery_types import TEXT_TYPES
from service.models import Column
from service.pipeline.value_parsers import FALSE_TEXT, PY_PARSERS, TRUE_TEXT, as_text, as_type

Failures = dict[int, str]
Converted = tuple[pa.Array, Failures]

# Arrow types that hold each scalar BigQuery type (canonical names) on its way to Parquet;
# a RECORD is a struct of its fields' types (``arrow_type``), a REPEATED column a list.
ARROW_TYPES: dict[str, pa.DataType] = {
    "STRING": pa.string(),
    "INTEGER": pa.int64(),
    "FLOAT": pa.float64(),
    "NUMERIC": pa.decimal128(38, 9),
    "BIGNUMERIC": pa.decimal256(76, 38),
    "BOOLEAN": pa.bool_(),
    "TIMESTAMP": pa.timestamp("us", tz="UTC"),
    "DATE": pa.date32(),
    "TIME": pa.time64("us"),
    "DATETIME": pa.timestamp("us"),
    "BYTES": pa.binary(),
    "JSON": pa.string(),  # JSON text; BigQuery parses a string into a JSON column
    "GEOGRAPHY": pa.string(),  # WKT or GeoJSON text
}
# Spellings BigQuery accepts for booleans in CSV, lower-cased, for the vectorized path.
TRUE_WORDS = pa.array(sorted(TRUE_TEXT))
FALSE_WORDS = pa.array(sorted(FALSE_TEXT))
# A time zone at the end of a timestamp's text: Z, +01, +0100 or +01:00.
ZONE_SUFFIX = r"([zZ]|[+-]\d{2}(:?\d{2})?)$"
ZONE_PATTERN = re.compile(ZONE_SUFFIX)
ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError)
# Types held as strings whose text is still checked (and BYTES, base64 in text files).
CHECKED_TEXT = frozenset({"JSON", "GEOGRAPHY"})


def arrow_schema(columns: tuple[Column, ...]) -> pa.Schema:
    return pa.schema([pa.field(c.name, arrow_type(c), nullable=not c.required) for c in columns])


def arrow_type(column: Column) -> pa.DataType:
    """The Arrow type of a column's values: standard structs and lists for nested ones.

    Fields inside a RECORD stay nullable in Arrow (a NULL record has NULL fields however they
    are declared); the validate stage checks their REQUIRED mode itself.
    """
    if column.type == "RECORD":
        kind = pa.struct([pa.field(f.name, arrow_type(f)) for f in column.fields])
    else:
        kind = ARROW_TYPES[column.type]
    return pa.list_(kind) if column.repeated else kind


@dataclass(frozen=True)
class CastRule:
    """How a `cast` transform reads one column's text: formats tried in order, or a separator."""

    formats: tuple[str, ...] = ()
    decimal_separator: str | None = None


def convert(
    raw: pa.Array, column: Column, *, text: bool, rule: CastRule | None = None
) -> Converted:
    """Cast one column. ``text``: the values are text (CSV, JSON) rather than typed (Parquet)."""
    target = ARROW_TYPES[column.type]
    failed: Failures
    if pa.types.is_dictionary(raw.type):
        raw = raw.dictionary_decode()
    if pa.types.is_null(raw.type):
        values, failed = pa.nulls(len(raw), target), {}
    elif pa.types.is_nested(raw.type) and column.type in TEXT_TYPES:
        values, failed = json_text(raw), {}  # kept as its JSON text
    elif column.type == "JSON" and not _storedas_text(raw.type):
        values, failed = json_text(raw), {}  # typed values (Parquet) as JSON
    elif (
        raw.type == target
        and column.type not in CHECKED_TEXT
        and not (text and column.type == "BYTES")
    ):
        values, failed = raw, {}  # converted already (by the CSV reader, or typed in Parquet)
    elif pa.types.is_binary(raw.type) and column.type == "BYTES":
        values, failed = _base64(raw, column.name) if text else (raw, {})
    elif pa.types.is_binary(raw.type) or pa.types.is_large_binary(raw.type):
        as_text, failed = _utf8(raw, column.name)
        values, bad = _from_text(as_text, column, rule)
        failed.update({i: r for i, r in bad.items() if i not in failed})
    elif pa.types.is_string(raw.type) or pa.types.is_large_string(raw.type):
        values, failed = _from_text(raw.cast(pa.string()), column, rule)
    else:
        values, failed = _native(raw, column)
    if column.required and values.null_count:
        for i in _indices(pc.is_null(values)):
            failed.setdefault(i, f"{column.name}: required value is missing")
    return values, failed


def _storedas_text(kind: pa.DataType) -> bool:
    return any(
        check(kind)
        for check in (
            pa.types.is_string,
            pa.types.is_large_string,
            pa.types.is_binary,
            pa.types.is_large_binary,
        )
    )


def _from_text(text: pa.Array, column: Column, rule: CastRule | None) -> Converted:
    target = ARROW_TYPES[column.type]
    if rule is not None and rule.formats:
        return _strptime(text, target, rule.formats, column)
    if rule is not None and rule.decimal_separator == ",":
        text = pc.replace_substring(text, ",", ".", max_replacements=1)
    converter = CONVERTERS.get(column.type, _cast)
    return converter(text, target, column)


def json_text(values: pa.Array) -> pa.Array:
    """Each value as JSON text (nested values kept in a STRING or JSON column)."""
    return pa.array(
        [
            None if v is None else json.dumps(v, ensure_ascii=False, default=str)
            for v in values.to_pylist()
        ],
        pa.string(),
    )


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


def _strptime(
    text: pa.Array, target: pa.DataType, formats: tuple[str, ...], column: Column
) -> Converted:
    """Each format in turn on the values no earlier one parsed: the first that parses wins."""
    trimmed = pc.utf8_trim_whitespace(text)
    try:
        parsed = pa.nulls(len(text), pa.timestamp("us"))
        for fmt in formats:
            found = pc.strptime(trimmed, format=fmt, unit="us", error_is_null=True)
            parsed = pc.coalesce(parsed, found)
        values = _time_as(parsed, target)
        missed = pc.and_(pc.is_null(parsed), pc.invert(pc.equal(pc.utf8_length(trimmed), 0)))
        if not pc.any(missed).as_py():
            return values, {}
    except ARROW_ERRORS:
        pass
    return _per_value(text, column, lambda v: _first_format(v.strip(), formats, column))


def _first_format(value: str, formats: tuple[str, ...], column: Column) -> object:
    for fmt in formats:
        try:
            return as_type(datetime.strptime(value, fmt), column)
        except ValueError:
            continue
    raise ValueError(f"matches none of the formats {', '.join(formats)}")


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
            out.append(parse(as_text(item)))
        except (ValueError, TypeError, InvalidOperation, OverflowError) as exc:
            out.append(None)
            why = (
                str(exc) if str(exc).startswith("matches none") else f"is not a valid {column.type}"
            )
            failed[i] = f"{column.name}: {_clip(item)!r} {why}"
    return pa.array(out, target), failed


# Type-specific vectorized converters for text; other types use a plain cast.
CONVERTERS: dict[str, Callable[[pa.Array, pa.DataType, Column], Converted]] = {
    "BOOLEAN": _boolean,
    "TIMESTAMP": _timestamp,
    "DATETIME": _datetime,
    # No Arrow kernel reads these: each value is checked in Python.
    "TIME": lambda text, target, column: _per_value(text, column),
    "JSON": lambda text, target, column: _per_value(text, column),
    "GEOGRAPHY": lambda text, target, column: _per_value(text, column),
}


def _indices(mask: pa.Array) -> list[int]:
    return [int(i) for i in pc.indices_nonzero(mask.fill_null(False)).to_pylist()]


def _clip(value: object, limit: int = 80) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "..."
