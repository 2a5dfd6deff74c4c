"""Outcome events: the one CloudEvent each finished unit announces to downstream jobs.

Pure: builds the event (through the cloudevents SDK, which checks its attributes) from what the
ledger recorded. The adapters deliver it: a Pub/Sub topic in the Pub/Sub protocol binding
(``service.pubsub_binding``), or a JSONL file of structured-mode events on the embedded
backends; ``DiscardOutcomes`` delivers nowhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, TypedDict

from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from service.events.event_types import OUTCOME_COMPLETED, OUTCOME_FAILED
from service.models import LedgerRecord, UnitKey, UnitResult, UnitState
from service.pubsub_binding import ATTRIBUTE_VALUE_MAX_BYTES

# Bumped only when a field changes meaning or disappears; new fields may be added freely.
# 2: a file rejected whole is FAILED (as in the ledger, the page and every command), no longer
# REJECTED; rows_quarantined is the rows the quarantine holds, rows_rejected the good rows refused.
SCHEMA_VERSION = 2
# The CloudEvent ``source`` of a pipeline's outcomes (a URI reference naming this service).
OUTCOME_SOURCE = "//gcp-ingest/pipelines/{pipeline}"


class EndState(StrEnum):
    """The ledger's final states, by the same names."""

    COMPLETED = "COMPLETED"
    FAILED = "FAILED"  # a permanent failure (the file refused whole, too): `error` says which


# The CloudEvent type of each end state.
EVENT_TYPES = {
    EndState.COMPLETED: OUTCOME_COMPLETED,
    EndState.FAILED: OUTCOME_FAILED,
}


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
        """Plain Pub/Sub attributes beside the binding's ``ce-`` ones, so subscription filters
        (``attributes.state = "FAILED"``) need no quoting of a hyphenated name."""
        return {"state": self.state.value, "pipeline": self.unit.pipeline, "table": self.table}

    def encode(self) -> bytes:
        """The event's data alone, as JSON (what a log line shows)."""
        return json.dumps(self.data(), ensure_ascii=False, separators=(",", ":")).encode()

    def cloudevent(self) -> CloudEvent:
        """The outcome as a CloudEvent: one id per unit and attempt, so a consumer can tell a
        message published twice from a forced re-run (a new attempt)."""
        attributes: dict[str, Any] = {
            "id": f"{self.key}-{self.attempt}",
            "source": OUTCOME_SOURCE.format(pipeline=self.unit.pipeline),
            "type": EVENT_TYPES[self.state],
            "time": self.finished_at,
            "datacontenttype": "application/json",
        }
        subject = str(self.unit)
        # An object name may take 1,024 bytes alone: past Pub/Sub's limit the data says it.
        if len(subject.encode()) <= ATTRIBUTE_VALUE_MAX_BYTES:
            attributes["subject"] = subject
        return CloudEvent(attributes, dict(self.data()))

    def structured(self) -> bytes:
        """The event in CloudEvents' structured JSON form (one line of the outcome file)."""
        return JSONFormat().write(self.cloudevent())


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
