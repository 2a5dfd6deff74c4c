"""A pipeline's schema: a BigQuery JSON schema file, or the same fields inline, into Columns.

Every BigQuery column type is read (see service/bigquery_types.py), RECORDs with their
``fields`` to any depth, in the modes NULLABLE, REQUIRED and REPEATED. Errors name the field by
its path (``schema[2].fields[0].type``) and, for a type, list the supported ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from service.bigquery_types import MODES, TYPES, canonical
from service.errors import ConfigError
from service.models import Column
from service.typed_reader import load_json

# BigQuery nests RECORDs at most 15 levels deep.
MAX_DEPTH = 15


class SchemaError(ConfigError):
    """A bad schema, with where in it (``schema[1].type``) apart from what is wrong."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(message)
        self.where = where
        self.message = message


def read_schema(ref: object, base: Path) -> tuple[Column, ...]:
    """The columns a ``schema`` value names: a file (relative to ``base``) or inline fields."""
    if isinstance(ref, list):
        fields: Any = ref  # inline, as [[pipelines.schema]] tables
    elif isinstance(ref, str):
        try:
            fields = load_json((base / ref).resolve(), "schema file")
        except ConfigError as exc:
            raise SchemaError("schema", str(exc)) from exc
    else:
        raise SchemaError("schema", "must be a JSON schema file name or a list of fields")
    if isinstance(fields, dict):
        fields = fields.get("fields", fields.get("schema", []))
    if not isinstance(fields, list) or not fields:
        raise SchemaError("schema", "must be a BigQuery JSON schema (a list of fields)")
    return _fields(fields, "schema", 1)


def _fields(specs: list[Any], where: str, depth: int) -> tuple[Column, ...]:
    columns = tuple(_column(spec, f"{where}[{i}]", depth) for i, spec in enumerate(specs))
    names = [c.name for c in columns]
    if len(set(names)) != len(names):
        raise SchemaError(where, "column names must be unique")
    return columns


def _column(spec: Any, where: str, depth: int) -> Column:
    if not isinstance(spec, dict) or "name" not in spec or "type" not in spec:
        raise SchemaError(where, "each field needs a name and a type")
    type_ = canonical(str(spec["type"]))
    if type_ not in TYPES:
        supported = ", ".join(sorted(TYPES))
        raise SchemaError(f"{where}.type", f"{type_} is not a BigQuery type ({supported})")
    mode = str(spec.get("mode", "NULLABLE")).upper()
    if mode not in MODES:
        raise SchemaError(f"{where}.mode", f"must be one of {', '.join(MODES)}")
    nested = spec.get("fields")
    if type_ != "RECORD":
        if nested:
            raise SchemaError(f"{where}.fields", "only a RECORD (STRUCT) column has fields")
        return Column(str(spec["name"]), type_, mode, spec.get("description"))
    if not isinstance(nested, list) or not nested:
        raise SchemaError(f"{where}.fields", "a RECORD needs a list of fields")
    if depth >= MAX_DEPTH:
        raise SchemaError(where, f"RECORDs nest at most {MAX_DEPTH} levels deep")
    fields = _fields(nested, f"{where}.fields", depth + 1)
    return Column(str(spec["name"]), type_, mode, spec.get("description"), fields)
