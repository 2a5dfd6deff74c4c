"""validate/transform: cast text columns to the schema, apply transforms, add lineage.

Everything is vectorized with pyarrow.compute; only a batch that holds bad values falls back
to per-value checks for the column that failed, to say exactly which rows are bad and why.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation

import pyarrow as pa
import pyarrow.compute as pc

from service.errors import PermanentError
from service.models import Column
from service.pipeline.config import Pipeline
from service.pipeline.context import BadRow, UnitContext

# Arrow types that hold each BigQuery type on its way to Parquet.
ARROW_TYPES: dict[str, pa.DataType] = {
    "STRING": pa.string(),
    "INTEGER": pa.int64(),
    "INT64": pa.int64(),
    "FLOAT": pa.float64(),
    "FLOAT64": pa.float64(),
    "NUMERIC": pa.decimal128(38, 9),
    "BOOLEAN": pa.bool_(),
    "BOOL": pa.bool_(),
    "TIMESTAMP": pa.timestamp("us", tz="UTC"),
    "DATE": pa.date32(),
    "DATETIME": pa.timestamp("us"),
    "BYTES": pa.binary(),
}
# Spellings BigQuery accepts for booleans in CSV, lower-cased.
TRUE_WORDS = pa.array(["true", "t", "1", "yes", "y"])
FALSE_WORDS = pa.array(["false", "f", "0", "no", "n"])


def arrow_schema(columns: tuple[Column, ...]) -> pa.Schema:
    return pa.schema(
        [pa.field(c.name, ARROW_TYPES[c.type], nullable=not c.required) for c in columns]
    )


@dataclass(frozen=True)
class Transformed:
    batch: pa.RecordBatch
    bad: list[BadRow]
    rows_in: int


class Transformer:
    """Turns parsed text batches into batches of the pipeline's output schema."""

    def __init__(self, ctx: UnitContext) -> None:
        self.ctx = ctx
        self.pipeline: Pipeline = ctx.pipeline
        self.schema = arrow_schema(ctx.pipeline.output_columns)
        self.renames = {t.column: t.to for t in self.pipeline.transforms if t.op == "rename"}
        self.drops = {t.column for t in self.pipeline.transforms if t.op == "drop"}
        self.computed = self._computed_values()
        self._checked_columns = False

    def _computed_values(self) -> dict[str, str | None]:
        values: dict[str, str | None] = {}
        for t in self.pipeline.transforms:
            if t.op == "constant":
                values[t.column] = t.value
            elif t.op == "from_path" and t.pattern:
                match = re.search(t.pattern, self.ctx.object.ref.name)
                values[t.column] = (
                    None
                    if match is None
                    else (match.groupdict().get("value") or match.group(match.lastindex or 0))
                )
        return values

    def __call__(self, batch: pa.RecordBatch, first_row: int) -> Transformed:
        columns = self._source_columns(batch)
        rows = batch.num_rows
        bad_mask = pa.array([False] * rows, pa.bool_()) if rows else pa.array([], pa.bool_())
        reasons: dict[int, str] = {}
        converted: dict[str, pa.Array] = {}
        for column in self.pipeline.table.columns:
            raw = columns.get(column.name)
            if raw is None:
                raw = pa.array([self.computed.get(column.name)] * rows, pa.string())
            values, failed = convert(raw, column)
            converted[column.name] = values
            for index, reason in failed.items():
                reasons.setdefault(index, reason)
        if reasons:
            bad_mask = pa.array([i in reasons for i in range(rows)], pa.bool_())
        arrays = [converted[c.name] for c in self.pipeline.table.columns]
        if self.pipeline.lineage:
            arrays.extend(self._lineage(rows))
        table = pa.RecordBatch.from_arrays(arrays, schema=self._nullable_schema())
        good = table.filter(pc.invert(bad_mask)) if reasons else table
        good = good.cast(self.schema) if good.num_rows else good.cast(self.schema, safe=False)
        bad = [
            BadRow(first_row + i, reason, _raw_row(batch, i))
            for i, reason in sorted(reasons.items())
        ]
        return Transformed(good, bad, rows)

    def _nullable_schema(self) -> pa.Schema:
        return pa.schema([pa.field(f.name, f.type, nullable=True) for f in self.schema])

    def _source_columns(self, batch: pa.RecordBatch) -> dict[str, pa.Array]:
        wanted = {c.name for c in self.pipeline.table.columns}
        columns: dict[str, pa.Array] = {}
        for name, array in zip(batch.schema.names, batch.columns, strict=True):
            if name in self.drops:
                continue
            target = self.renames.get(name, name)
            if target not in wanted:
                raise PermanentError(f"file column {name!r} is not in the table schema")
            columns[target] = array
        if not self._checked_columns:
            missing = [
                c.name
                for c in self.pipeline.table.columns
                if c.name not in columns and c.name not in self.computed and c.required
            ]
            if missing:
                raise PermanentError(f"file lacks required columns: {', '.join(missing)}")
            self._checked_columns = True
        return columns

    def _lineage(self, rows: int) -> list[pa.Array]:
        ref = self.ctx.object.ref
        now = datetime.now(UTC)
        return [
            pa.array([ref.uri] * rows, pa.string()),
            pa.array([ref.generation] * rows, pa.int64()),
            pa.array([self.ctx.event.event_id] * rows, pa.string()),
            pa.array([now] * rows, pa.timestamp("us", tz="UTC")),
        ]


def convert(raw: pa.Array, column: Column) -> tuple[pa.Array, dict[int, str]]:
    """Cast one column; returns the values (bad ones null) and {row index: reason}."""
    text, failed = _as_text(raw, column.name)
    target = ARROW_TYPES[column.type]
    converter = CONVERTERS.get(column.type, _cast)
    values, bad = converter(text, target, column.name)
    failed.update({i: r for i, r in bad.items() if i not in failed})
    if column.required:
        nulls = pc.is_null(values)
        if pc.any(nulls).as_py():
            for i in _indices(nulls):
                failed.setdefault(i, f"{column.name}: required value is missing")
    return values, failed


def _as_text(raw: pa.Array, name: str) -> tuple[pa.Array, dict[int, str]]:
    if pa.types.is_string(raw.type) or pa.types.is_large_string(raw.type):
        return raw, {}
    try:
        return pc.cast(raw, pa.string()), {}
    except pa.ArrowInvalid:
        values: list[str | None] = []
        failed: dict[int, str] = {}
        for i, item in enumerate(raw.to_pylist()):
            try:
                values.append(None if item is None else bytes(item).decode("utf-8"))
            except UnicodeDecodeError:
                values.append(None)
                failed[i] = f"{name}: not valid UTF-8"
        return pa.array(values, pa.string()), failed


def _cast(text: pa.Array, target: pa.DataType, name: str) -> tuple[pa.Array, dict[int, str]]:
    try:
        return pc.cast(text, target), {}
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return _per_value(text, target, name)


def _per_value(text: pa.Array, target: pa.DataType, name: str) -> tuple[pa.Array, dict[int, str]]:
    parse = PY_PARSERS.get(str(target))
    values: list[object] = []
    failed: dict[int, str] = {}
    for i, item in enumerate(text.to_pylist()):
        if item is None:
            values.append(None)
            continue
        try:
            values.append(parse(item) if parse else pc.cast(pa.array([item]), target)[0].as_py())
        except (ValueError, InvalidOperation, OverflowError, pa.ArrowInvalid):
            values.append(None)
            failed[i] = f"{name}: {_clip(item)!r} is not a valid {target}"
    return pa.array(values, target), failed


def _integer(text: pa.Array, target: pa.DataType, name: str) -> tuple[pa.Array, dict[int, str]]:
    return _cast(pc.utf8_trim_whitespace(text), target, name)


def _boolean(text: pa.Array, target: pa.DataType, name: str) -> tuple[pa.Array, dict[int, str]]:
    lowered = pc.utf8_lower(pc.utf8_trim_whitespace(text))
    is_true = pc.is_in(lowered, value_set=TRUE_WORDS)
    is_false = pc.is_in(lowered, value_set=FALSE_WORDS)
    known = pc.or_(is_true, is_false)
    values = pc.if_else(known, is_true, pa.scalar(None, pa.bool_()))
    bad_mask = pc.and_(pc.is_valid(text), pc.invert(known))
    failed = {i: f"{name}: {_clip(text[i].as_py())!r} is not a BOOLEAN" for i in _indices(bad_mask)}
    return values, failed


def _timestamp(text: pa.Array, target: pa.DataType, name: str) -> tuple[pa.Array, dict[int, str]]:
    text = pc.utf8_trim_whitespace(text)
    try:
        return pc.cast(text, target), {}
    except pa.ArrowInvalid:
        pass
    try:
        naive = pc.cast(text, pa.timestamp("us"))
        return pc.assume_timezone(naive, "UTC"), {}
    except pa.ArrowInvalid:
        return _per_value(text, target, name)


def _int64(value: str) -> int:
    number = int(value.strip())
    if not -(2**63) <= number < 2**63:
        raise OverflowError("out of INT64 range")
    return number


def _parse_timestamp(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.strip().replace(" UTC", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _parse_datetime(value: str) -> datetime:
    return datetime.fromisoformat(value.strip()).replace(tzinfo=None)


def _parse_date(value: str) -> date:
    return date.fromisoformat(value.strip())


def _parse_decimal(value: str) -> Decimal:
    number = Decimal(value.strip())
    if not number.is_finite():
        raise ValueError("not finite")
    return number.quantize(Decimal("1.000000000"))


# Python parsers for the slow path, by Arrow type name: exact reasons for bad values.
PY_PARSERS: dict[str, Callable[[str], object]] = {
    "int64": _int64,
    "double": lambda v: float(v.strip()),
    "decimal128(38, 9)": _parse_decimal,
    "timestamp[us, tz=UTC]": _parse_timestamp,
    "timestamp[us]": _parse_datetime,
    "date32[day]": _parse_date,
}
# Type-specific vectorized converters; other types use a plain cast.
CONVERTERS: dict[str, Callable[[pa.Array, pa.DataType, str], tuple[pa.Array, dict[int, str]]]] = {
    "INTEGER": _integer,
    "INT64": _integer,
    "FLOAT": _integer,
    "FLOAT64": _integer,
    "NUMERIC": _integer,
    "BOOLEAN": _boolean,
    "BOOL": _boolean,
    "TIMESTAMP": _timestamp,
    "DATETIME": _timestamp,
    "DATE": _integer,
}


def _indices(mask: pa.Array) -> list[int]:
    return [int(i) for i in pc.indices_nonzero(mask).to_pylist()]


def _clip(value: object, limit: int = 80) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _raw_row(batch: pa.RecordBatch, index: int) -> str:
    row = {}
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        value = column[index].as_py()
        row[name] = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return json.dumps(row, ensure_ascii=False, default=str)
