"""``ingest schema infer``: a BigQuery JSON schema from a sample file, by pyarrow's inference.

CSV and NDJSON are read from the head of the file (``sample_bytes``, cut at the last whole
line; ``.gz`` is inflated); Parquet gives its own schema from the footer. Each Arrow type maps
to the BigQuery type that holds its values; a struct becomes a RECORD and a list a REPEATED
field (``nested`` names them: pipelines cannot load nested values yet). Every column is
NULLABLE: a sample cannot prove a column is never empty. A CSV time with an offset or Z is a
TIMESTAMP and one without a DATETIME; pyarrow's JSON reader drops the offset, so NDJSON times
are TIMESTAMP (which takes both).
"""

from __future__ import annotations

import gzip
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from service.errors import PermanentError

# Bytes of a CSV or NDJSON file read for the sample.
DEFAULT_SAMPLE_BYTES = 10 * 1024 * 1024
# File name endings and the format each means (after any ".gz").
FORMATS = {
    ".csv": "csv",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".json": "ndjson",
    ".parquet": "parquet",
}
# What BigQuery calls a column name: letters, digits, underscores, not starting with a digit.
COLUMN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,299}")


@dataclass(frozen=True)
class Inferred:
    fields: list[dict[str, Any]]  # the BigQuery JSON schema
    rows: int | None  # rows in the sample (None: Parquet, whose schema needs no rows)
    nested: tuple[str, ...]  # RECORD or REPEATED fields, which pipelines cannot load yet
    bad_names: tuple[str, ...]  # names BigQuery would refuse (rename them in the pipeline)


def file_format(path: Path, given: str | None) -> str:
    if given:
        return given
    suffix = path.name.removesuffix(".gz")
    for ending, fmt in FORMATS.items():
        if suffix.endswith(ending):
            return fmt
    raise PermanentError(f"{path.name}: say --format csv, ndjson or parquet")


def infer(
    path: Path, fmt: str, *, delimiter: str = ",", sample_bytes: int = DEFAULT_SAMPLE_BYTES
) -> Inferred:
    try:
        if fmt == "parquet":
            schema, rows = pq.read_schema(path), None
        else:
            table = _sample_table(path, fmt, delimiter, sample_bytes)
            schema, rows = table.schema, table.num_rows
    except (pa.ArrowInvalid, OSError, EOFError) as exc:
        raise PermanentError(f"{path.name}: not readable as {fmt}: {exc}") from exc
    nested: list[str] = []
    zoned = fmt == "ndjson"
    fields = [_field(f, nested, "", zoned) for f in schema]
    bad = tuple(f.name for f in schema if not COLUMN_NAME.fullmatch(f.name))
    return Inferred(fields, rows, tuple(nested), bad)


def _sample_table(path: Path, fmt: str, delimiter: str, sample_bytes: int) -> pa.Table:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as file:
        head = file.read(sample_bytes + 1)
    if len(head) > sample_bytes:  # cut: keep whole lines only
        head = head[: head.rfind(b"\n", 0, sample_bytes) + 1]
    if fmt == "csv":
        parse = pacsv.ParseOptions(delimiter=delimiter)
        return pacsv.read_csv(io.BytesIO(head), parse_options=parse)
    return pajson.read_json(io.BytesIO(head))


def _field(f: pa.Field, nested: list[str], parent: str, zoned: bool) -> dict[str, Any]:
    kind, mode = f.type, "NULLABLE"
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        kind, mode = kind.value_type, "REPEATED"
    path = f"{parent}{f.name}"
    out: dict[str, Any] = {"name": f.name, "type": _type(kind, zoned), "mode": mode}
    if pa.types.is_struct(kind):
        out["fields"] = [
            _field(kind.field(i), nested, f"{path}.", zoned) for i in range(kind.num_fields)
        ]
    if mode == "REPEATED" or pa.types.is_struct(kind):
        nested.append(path)
    return out


def _type(kind: pa.DataType, zoned: bool) -> str:
    """The BigQuery type that holds the values of an Arrow type (STRING when none is closer);
    ``zoned``: every timestamp is a TIMESTAMP (the reader may have dropped its offset)."""
    checks = (
        (pa.types.is_boolean, "BOOLEAN"),
        (pa.types.is_integer, "INTEGER"),
        (pa.types.is_floating, "FLOAT"),
        (pa.types.is_decimal, "NUMERIC"),
        (pa.types.is_date, "DATE"),
        (pa.types.is_binary, "BYTES"),
        (pa.types.is_large_binary, "BYTES"),
        (pa.types.is_struct, "RECORD"),
    )
    if pa.types.is_timestamp(kind):
        return "TIMESTAMP" if kind.tz or zoned else "DATETIME"
    return next((name for check, name in checks if check(kind)), "STRING")
