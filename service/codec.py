"""Ledger records to and from plain documents (Firestore, SQLite JSON, memory)."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

from service.errors import TransientError
from service.models import LedgerRecord, UnitResult, UnitState

# Fields holding instants: stored natively by Firestore (TTL needs that), as ISO text elsewhere.
TIME_FIELDS = ("lease_expires_at", "created_at", "updated_at", "expire_at")
# Field names of each dataclass: what is written, and all that is read back (a document written
# by a newer version may carry more).
RECORD_FIELDS = tuple(f.name for f in fields(LedgerRecord))
RESULT_FIELDS = tuple(f.name for f in fields(UnitResult))


def to_doc(record: LedgerRecord) -> dict[str, Any]:
    # By hand rather than dataclasses.asdict, whose deep copies were a third of the ledger's
    # CPU per claim+complete pair (bench/ledger.py).
    doc = {name: getattr(record, name) for name in RECORD_FIELDS}
    doc["state"] = record.state.value
    if record.result is not None:
        result = {name: getattr(record.result, name) for name in RESULT_FIELDS}
        result["durations"] = dict(record.result.durations)
        doc["result"] = result
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
    values["write_streams"] = tuple(values.get("write_streams") or ())
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
