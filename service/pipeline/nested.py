"""Casting RECORD and REPEATED columns: Arrow structs and lists, checked to any depth.

The fast path rebuilds the column from its children, field by field, each leaf cast by
casts.py, with no per-row Python. Anything it cannot vouch for (an unknown field, a leaf that
does not cast, a NULL where the schema says REQUIRED, a NULL inside an array, JSON leaves)
sends the whole column to the exact path: each value walked in Python, a bad one reported with
the path of the field that is wrong (``items[3].price``). Text (a CSV field, a value the NDJSON
parser kept as text) is read as JSON first. Used by the validate stage only.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from service.bigquery_types import TEXT_TYPES
from service.models import Column
from service.pipeline.casts import (
    ARROW_ERRORS,
    Converted,
    Failures,
    arrow_type,
    convert,
)
from service.pipeline.value_parsers import PY_PARSERS


class _Exact(Exception):
    """The fast path cannot vouch for this column: walk it value by value."""


class _Bad(Exception):
    """One value that does not fit, with the path of the field at fault."""


def convert_nested(raw: pa.Array, column: Column, *, text: bool, ignore_unknown: bool) -> Converted:
    """Cast one RECORD or REPEATED column. ``text`` as for casts.convert; ``ignore_unknown``
    drops fields the schema lacks instead of rejecting their rows."""
    if pa.types.is_dictionary(raw.type):
        raw = raw.dictionary_decode()
    if pa.types.is_null(raw.type):
        return _empty(column, len(raw)), {}
    walk = _Walk(text=text, ignore_unknown=ignore_unknown)
    if pa.types.is_string(raw.type) or pa.types.is_large_string(raw.type):
        return walk.column(raw.to_pylist(), column, from_json=True)
    try:
        return _vector(raw, column, text, ignore_unknown), {}
    except (_Exact, *ARROW_ERRORS):
        return walk.column(raw.to_pylist(), column, from_json=False)


def _empty(column: Column, count: int) -> pa.Array:
    """NULLs, or empty arrays: a REPEATED column is never NULL in BigQuery."""
    target = arrow_type(column)
    if column.repeated:
        return pa.array([[]] * count, target)
    return pa.nulls(count, target)


# ---- the fast path: whole columns ----------------------------------------------------------


def _vector(raw: pa.Array, column: Column, text: bool, ignore_unknown: bool) -> pa.Array:
    if pa.types.is_null(raw.type) and not (column.required and len(raw)):
        return _empty(column, len(raw))
    if column.repeated:
        if not (pa.types.is_list(raw.type) or pa.types.is_large_list(raw.type)):
            raise _Exact
        if raw.values.null_count:
            raise _Exact  # BigQuery arrays cannot hold NULL: say which element
        items = _vector(raw.values, column.item, text, ignore_unknown)
        rebuilt = pa.ListArray.from_arrays(pc.cast(raw.offsets, pa.int32()), items)
        return pc.fill_null(rebuilt, pa.scalar([], rebuilt.type)) if raw.null_count else rebuilt
    if column.type == "RECORD":
        return _struct(raw, column, text, ignore_unknown)
    if column.required and raw.null_count:
        raise _Exact
    if column.type == "JSON" or pa.types.is_nested(raw.type):
        raise _Exact  # a JSON leaf's text depends on where it came from: see _Walk.leaf
    values, failed = convert(raw, column, text=text)
    if failed:
        raise _Exact
    return values


def _struct(raw: pa.Array, column: Column, text: bool, ignore_unknown: bool) -> pa.Array:
    if not pa.types.is_struct(raw.type):
        raise _Exact
    have = {raw.type.field(i).name: i for i in range(raw.type.num_fields)}
    wanted = {f.name for f in column.fields}
    unknown = [i for name, i in have.items() if name not in wanted]
    if not ignore_unknown and any(raw.field(i).null_count < len(raw) for i in unknown):
        raise _Exact  # a value for a field the schema lacks: drop it, or reject its row
    parent_valid = pc.is_valid(raw)
    children = []
    for field in column.fields:
        if field.name not in have:
            children.append(_empty(field, len(raw)))
            continue
        child = raw.field(have[field.name])
        if field.required and pc.any(pc.and_(parent_valid, pc.is_null(child))).as_py():
            raise _Exact
        # REQUIRED is checked above: under a NULL record, the field is NULL too.
        loose = field if field.repeated else replace(field, mode="NULLABLE")
        children.append(_vector(child, loose, text, ignore_unknown))
    names = [pa.field(f.name, arrow_type(f)) for f in column.fields]
    mask = pc.invert(parent_valid) if raw.null_count else None
    return pa.StructArray.from_arrays(children, fields=names, mask=mask)


# ---- the exact path: value by value ----------------------------------------------------------


class _Walk:
    """Checks Python values against a column, naming the path of the first bad field."""

    def __init__(self, *, text: bool, ignore_unknown: bool) -> None:
        self.text = text
        self.ignore_unknown = ignore_unknown

    def column(self, values: list[Any], column: Column, *, from_json: bool) -> Converted:
        out: list[Any] = []
        failed: Failures = {}
        for i, value in enumerate(values):
            try:
                decoded = _decode(value, column.name) if from_json else value
                out.append(self.value(decoded, column, column.name))
            except _Bad as exc:
                failed[i] = str(exc)
                out.append([] if column.repeated else None)
        return pa.array(out, arrow_type(column)), failed

    def value(self, value: Any, column: Column, path: str) -> Any:
        if column.repeated:
            if value is None:
                return []
            if not isinstance(value, list):
                raise _Bad(f"{path}: {_clip(value)} is not an array")
            item = column.item
            return [self.item(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
        if value is None:
            if column.required:
                raise _Bad(f"{path}: required value is missing")
            return None
        if column.type == "RECORD":
            return self.record(value, column, path)
        return self.leaf(value, column, path)

    def item(self, value: Any, column: Column, path: str) -> Any:
        if value is None:
            raise _Bad(f"{path}: is NULL, and BigQuery arrays cannot hold NULL")
        return self.value(value, column, path)

    def record(self, value: Any, column: Column, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _Bad(f"{path}: {_clip(value)} is not a RECORD (a JSON object)")
        names = {f.name for f in column.fields}
        unknown = [k for k, v in value.items() if k not in names and v is not None]
        if unknown and not self.ignore_unknown:
            raise _Bad(f"{path}.{unknown[0]}: unknown field")
        return {f.name: self.value(value.get(f.name), f, f"{path}.{f.name}") for f in column.fields}

    def leaf(self, value: Any, column: Column, path: str) -> Any:
        if isinstance(value, dict | list):
            if column.type in TEXT_TYPES:
                return json.dumps(value, ensure_ascii=False, default=str)
            raise _Bad(f"{path}: {_clip(value)} is not a {column.type}")
        if column.type == "JSON" and not (isinstance(value, str) and not self.text):
            # A decoded JSON value (a string is a JSON string); Parquet strings are JSON text.
            return json.dumps(value, ensure_ascii=False, default=str)
        if isinstance(value, bytes) and column.type == "BYTES" and not self.text:
            return value
        if isinstance(value, bool) and column.type != "BOOLEAN":
            raise _Bad(f"{path}: {_clip(value)} is not a {column.type}")
        try:
            return PY_PARSERS[column.type](_as_text(value))
        except (ValueError, TypeError, ArithmeticError) as exc:
            raise _Bad(f"{path}: {_clip(value)} is not a valid {column.type}") from exc


def _decode(value: str | None, name: str) -> Any:
    """A nested value given as JSON text (a CSV field, or kept as text by the NDJSON parser)."""
    if value is None or not value.strip():
        return None
    try:
        return json.loads(value)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _Bad(f"{name}: not valid JSON: {exc}") from exc


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # 2.0 is the integer 2, as in a flat column
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)


def _clip(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + "..."
