"""Ledger records to and from plain documents (Firestore, SQLite JSON, memory)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from service.models import LedgerRecord, UnitResult, UnitState

# Fields holding instants: stored natively by Firestore (TTL needs that), as ISO text elsewhere.
TIME_FIELDS = ("lease_expires_at", "created_at", "updated_at", "expire_at")


def to_doc(record: LedgerRecord) -> dict[str, Any]:
    doc = asdict(record)
    doc["state"] = record.state.value
    return doc


def from_doc(doc: dict[str, Any]) -> LedgerRecord:
    values = dict(doc)
    for name in TIME_FIELDS:
        values[name] = as_datetime(values[name])
    values["state"] = UnitState(values["state"])
    result = values.get("result")
    values["result"] = UnitResult(**result) if isinstance(result, dict) else None
    known = LedgerRecord.__dataclass_fields__
    return LedgerRecord(**{k: v for k, v in values.items() if k in known})


def as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def json_default(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__}")
