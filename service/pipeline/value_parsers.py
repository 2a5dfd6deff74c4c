"""Parsing one text value as a BigQuery type, in Python: the slow path of the casts.

casts.py converts whole columns with pyarrow kernels; only a column that fails there is checked
value by value with these parsers, to name exactly which rows are bad and why.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from datetime import time as time_of_day
from decimal import Decimal, localcontext

from service.models import Column

# Spellings BigQuery accepts for booleans in CSV, lower-cased.
TRUE_TEXT = frozenset({"true", "t", "1", "yes", "y"})
FALSE_TEXT = frozenset({"false", "f", "0", "no", "n"})
# How WKT text begins: a geometry's name.
WKT_START = re.compile(
    r"(?i)(POINT|LINESTRING|POLYGON|MULTIPOINT|MULTILINESTRING|MULTIPOLYGON|GEOMETRYCOLLECTION)\b"
)


def as_text(item: object) -> str:
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


def as_type(parsed: datetime, column: Column) -> object:
    if column.type == "DATE":
        return parsed.date()
    if column.type == "TIMESTAMP":
        return utc(parsed)
    if parsed.tzinfo is not None:
        raise ValueError("DATETIME values cannot carry a time zone")
    return parsed


def _int64(value: str) -> int:
    number = int(value.strip())
    if not -(2**63) <= number < 2**63:
        raise OverflowError("out of INT64 range")
    return number


def utc(parsed: datetime) -> datetime:
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _parse_timestamp(value: str) -> datetime:
    text = value.strip()
    if text.endswith(" UTC"):
        text = text[:-4] + "+00:00"
    return utc(datetime.fromisoformat(text))


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


def _parse_bignumeric(value: str) -> Decimal:
    with localcontext() as context:
        context.prec = 80
        number = Decimal(value.strip())
        if not number.is_finite() or abs(number) >= Decimal(10) ** 38:
            raise ValueError("not a finite BIGNUMERIC")
        return number.quantize(Decimal(1).scaleb(-38))


def _parse_json(value: str) -> str:
    json.loads(value)
    return value


def _parse_geography(value: str) -> str:
    """WKT (``POINT(1 2)``) or a GeoJSON geometry; BigQuery checks the shape itself."""
    text = value.strip()
    if text.startswith("{"):
        found = json.loads(text)
        if not isinstance(found, dict) or "type" not in found:
            raise ValueError("GeoJSON needs a type")
    elif not WKT_START.match(text):
        raise ValueError("not WKT or GeoJSON")
    return value


def _parse_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in TRUE_TEXT:
        return True
    if lowered in FALSE_TEXT:
        return False
    raise ValueError("not a boolean")


# Python parsers for the slow path, by BigQuery type: exact reasons for bad values.
PY_PARSERS: dict[str, Callable[[str], object]] = {
    "STRING": str,
    "INTEGER": _int64,
    "FLOAT": lambda v: float(v.strip()),
    "NUMERIC": _parse_decimal,
    "BIGNUMERIC": _parse_bignumeric,
    "TIME": lambda v: time_of_day.fromisoformat(v.strip()),
    "JSON": _parse_json,
    "GEOGRAPHY": _parse_geography,
    "BOOLEAN": _parse_bool,
    "TIMESTAMP": _parse_timestamp,
    "DATETIME": _parse_datetime,
    "DATE": lambda v: date.fromisoformat(v.strip()),
    "BYTES": lambda v: base64.b64decode(v, validate=True),
}
