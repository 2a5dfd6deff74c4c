"""What every stage of one unit may know: the unit, its pipeline, its object, its event."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from service.models import EventMeta, ObjectInfo, UnitKey
from service.pipeline.config import Pipeline


@dataclass(frozen=True)
class UnitContext:
    key: UnitKey
    pipeline: Pipeline
    object: ObjectInfo
    event: EventMeta
    started_at: datetime

    @property
    def job_id(self) -> str:
        """Derived from the unit and the pipeline's version: a retried load reuses it."""
        digest = hashlib.sha256(f"{self.key}|{self.pipeline.version}".encode()).hexdigest()
        return f"ingest_{self.pipeline.name}_{digest[:32]}"[:1024]


@dataclass(frozen=True)
class BadRow:
    """One row that could not be loaded, kept in the quarantine with its reason."""

    row: int | None
    reason: str
    raw: str
