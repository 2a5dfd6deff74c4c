"""Outcome events: the one message each finished unit announces to downstream jobs.

Pure: builds the message from what the ledger recorded. The adapters deliver it (a Pub/Sub
topic, or a JSONL file on the embedded backends); ``DiscardOutcomes`` delivers nowhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TypedDict

from service.models import LedgerRecord, UnitKey, UnitResult, UnitState

# Bumped only when a field changes meaning or disappears; new fields may be added freely.
# 2: a file rejected whole is FAILED (as in the ledger, the page and every command), no longer
# REJECTED; rows_quarantined is the rows the quarantine holds, rows_rejected the good rows refused.
SCHEMA_VERSION = 2


class EndState(StrEnum):
    """The ledger's final states, by the same names."""

    COMPLETED = "COMPLETED"
    FAILED = "FAILED"  # a permanent failure (the file refused whole, too): `error` says which


class SourceData(TypedDict):
    bucket: str
    name: str
    generation: str  # int64 as a string, as Cloud Storage's JSON API writes it
    uri: str


class OutcomeData(TypedDict):
    """The JSON data of one outcome message (the same object as one line of the JSONL file)."""

    version: int
    key: str
    unit: str
    state: str
    pipeline: str
    source: SourceData
    table: str
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    rows_rejected: int
    job_id: str | None
    quarantine_uri: str | None
    error: str | None
    event_id: str | None
    attempt: int
    finished_at: str


@dataclass(frozen=True)
class UnitEnded:
    """A unit reached a final state in the ledger: what its outcome message says."""

    unit: UnitKey
    key: str
    state: EndState
    table: str
    result: UnitResult | None
    error: str | None
    event_id: str | None
    attempt: int
    finished_at: datetime

    def data(self) -> OutcomeData:
        result = self.result or UnitResult()
        return {
            "version": SCHEMA_VERSION,
            "key": self.key,
            "unit": str(self.unit),
            "state": self.state.value,
            "pipeline": self.unit.pipeline,
            "source": {
                "bucket": self.unit.bucket,
                "name": self.unit.name,
                "generation": str(self.unit.generation),
                "uri": f"gs://{self.unit.bucket}/{self.unit.name}",
            },
            "table": self.table,
            "rows_read": result.rows_read,
            "rows_loaded": result.rows_loaded,
            "rows_quarantined": result.rows_quarantined,
            "rows_rejected": result.rows_rejected,
            "job_id": result.job_id,
            "quarantine_uri": result.quarantine_uri,
            "error": self.error,
            "event_id": self.event_id,
            "attempt": self.attempt,
            "finished_at": self.finished_at.isoformat(),
        }

    def attributes(self) -> dict[str, str]:
        """Pub/Sub attributes, so subscriptions can filter without reading the data."""
        return {"state": self.state.value, "pipeline": self.unit.pipeline, "table": self.table}

    def encode(self) -> bytes:
        return json.dumps(self.data(), ensure_ascii=False, separators=(",", ":")).encode()


def unit_ended(unit: UnitKey, record: LedgerRecord, table: str) -> UnitEnded:
    """The outcome of a record the ledger has just finished (COMPLETED or FAILED)."""
    if record.state is UnitState.IN_PROGRESS:
        raise ValueError(f"unit {record.unit} has not ended: it is still in progress")
    state = EndState.COMPLETED if record.state is UnitState.COMPLETED else EndState.FAILED
    return UnitEnded(
        unit=unit,
        key=record.key,
        state=state,
        table=table,
        result=record.result,
        error=record.error,
        event_id=record.event_id,
        attempt=record.attempt,
        finished_at=record.updated_at,
    )


class DiscardOutcomes:
    """The publisher when nobody listens (the gcp backend without INGEST_OUTCOME_TOPIC)."""

    async def publish(self, outcome: UnitEnded) -> None:
        return None

    async def close(self) -> None:
        return None
