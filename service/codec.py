"""Ledger records to and from plain documents (Firestore, SQLite JSON, memory)."""

from __future__ import annotations

from dataclasses import asdict, fields
from datetime import UTC, datetime
from typing import Any

from service.errors import TransientError
from service.models import LedgerRecord, UnitResult, UnitState

# Fields holding instants: stored natively by Firestore (TTL needs that), as ISO text elsewhere.
TIME_FIELDS = ("lease_expires_at", "created_at", "updated_at", "expire_at")
# Field names each dataclass accepts: documents written by a newer version may carry more.
RECORD_FIELDS = frozenset(f.name for f in fields(LedgerRecord))
RESULT_FIELDS = frozenset(f.name for f in fields(UnitResult))


def to_doc(record: LedgerRecord) -> dict[str, Any]:
    doc = asdict(record)
    doc["state"] = record.state.value
    return doc


def from_doc(doc: dict[str, Any]) -> LedgerRecord:
    """The record a document holds; an unreadable one is a TransientError (never a guess)."""
    try:
        return _decode(doc)
    except (KeyError, TypeError, ValueError) as exc:
        key = doc.get("key", "?")
        raise TransientError(f"ledger record {key} is unreadable: {exc!r}") from exc


def _decode(doc: dict[str, Any]) -> LedgerRecord:
    values = {k: v for k, v in doc.items() if k in RECORD_FIELDS}
    for name in TIME_FIELDS:
        values[name] = as_datetime(values[name])
    values["state"] = UnitState(values["state"])
    result = values.get("result")
    values["result"] = (
        UnitResult(**{k: v for k, v in result.items() if k in RESULT_FIELDS})
        if isinstance(result, dict)
        else None
    )
    return LedgerRecord(**values)


def as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str):
        raise TypeError(f"expected an instant, got {type(value).__name__}")
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def json_default(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__}")
