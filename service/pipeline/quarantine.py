"""The quarantine: a unit's bad rows kept on disk while it runs, then one JSONL object per unit.

Where the object goes is the pipeline's (``Pipeline.quarantine_location``); its name adds the
pipeline, the source object and its generation, so a retried unit rewrites the same object.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from dataclasses import dataclass

from service.models import ObjectRef
from service.pipeline.context import BadRow, UnitContext
from service.pipeline.spool_budget import SpoolAccount
from service.ports import ObjectStore


@dataclass(frozen=True)
class Quarantine:
    uri: str
    rows: int


def quarantine_ref(ctx: UnitContext) -> ObjectRef:
    bucket, prefix = ctx.pipeline.quarantine_location
    ref = ctx.object.ref
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return ObjectRef(bucket, f"{prefix}{ctx.pipeline.name}/{ref.name}#{ref.generation}.jsonl")


class QuarantineSpool:
    """Bad rows of one unit, kept on disk as JSONL until the unit ends (memory stays flat);
    their bytes are taken from the instance's spool budget."""

    def __init__(self, room: SpoolAccount | None = None) -> None:
        self._file = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self.count = 0
        self.room = room

    def add(self, bad: list[BadRow]) -> None:
        """Called from a worker thread with one batch's bad rows."""
        if not bad:
            return
        lines = [
            json.dumps({"row": b.row, "reason": b.reason, "raw": b.raw}, ensure_ascii=False)
            for b in bad
        ]
        data = ("\n".join(lines) + "\n").encode("utf-8")
        if self.room is not None:
            self.room.take(len(data), "the quarantined rows")
        self._file.write(data)
        self.count += len(bad)

    async def publish(
        self, store: ObjectStore, ctx: UnitContext, reason: str | None = None
    ) -> Quarantine | None:
        """One JSONL object per unit: each bad row (number, raw content, reason), then why the
        file was rejected, if it was."""
        if not self.count and reason is None:
            return None
        if reason is not None:
            line = {"row": None, "reason": reason, "raw": None}
            self._file.write((json.dumps(line) + "\n").encode("utf-8"))
        self._file.seek(0)
        data = await asyncio.to_thread(self._file.read)
        ref = await store.write(quarantine_ref(ctx), data, "application/x-ndjson")
        return Quarantine(ref.uri, self.count)

    def close(self) -> None:
        self._file.close()
