"""Outcome events on the embedded backends: one CloudEvent per finished unit, appended to a file.

Each line is the event in CloudEvents' structured JSON form (``application/cloudevents+json``):
its ``data`` is exactly the body the Pub/Sub adapter publishes, and its attributes are those the
topic's messages carry as ``ce-`` attributes.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from service.errors import TransientError
from service.outcomes import UnitEnded


class JsonlOutcomeFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        # One writer at a time: concurrent appends of long lines could interleave.
        self._lock = asyncio.Lock()

    async def publish(self, outcome: UnitEnded) -> None:
        line = outcome.structured() + b"\n"
        async with self._lock:
            try:
                await asyncio.to_thread(self._append, line)
            except OSError as exc:
                raise TransientError(f"append to {self.path}: {exc}") from exc

    def _append(self, line: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as out:
            out.write(line)

    async def close(self) -> None:
        return None
