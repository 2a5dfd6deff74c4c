"""Scripted faults for the Write API, for what an emulator cannot be made to do on cue: an
append's answer lost after the rows were applied, a connection reset mid-stream, a commit whose
answer is lost (so the retry hears "already committed"), and a crash at a chosen step.

Each fault fires once, on the n-th call of its operation (1-based), and is then used up.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from service.errors import ConnectionLost, TransientError
from service.models import StreamState, TableSpec
from service.ports import StreamWriter

log = logging.getLogger(__name__)


class Crash(BaseException):
    """The process dies here (BaseException: no handler of the service catches it)."""


@dataclass
class Script:
    """Which call of each operation fails, and how."""

    append_answer_lost: set[int] = field(default_factory=set)  # applied, then the reply is lost
    append_reset: set[int] = field(default_factory=set)  # connection reset before it applied
    commit_answer_lost: set[int] = field(default_factory=set)  # committed, reply lost
    crash_after_finalize: bool = False  # finalized, the ledger still says "writing"
    crash_before_commit: bool = False  # the ledger says "committing", no commit sent
    crash_after_commit: bool = False
    before_commit: Callable[[], Awaitable[None]] | None = None  # e.g. hold the commit open


class StreamWriterWrapper:
    """What a faulty Write API passes through untouched: reads, drops and closing."""

    def __init__(self, inner: StreamWriter) -> None:
        self.inner = inner

    async def describe(self, stream: str) -> StreamState:
        return await self.inner.describe(stream)

    async def abandon(self, stream: str) -> None:
        await self.inner.abandon(stream)

    async def close(self) -> None:
        await self.inner.close()


class ScriptedStreamWriter(StreamWriterWrapper):
    def __init__(self, inner: StreamWriter, script: Script) -> None:
        super().__init__(inner)
        self.script = script
        self.calls: dict[str, int] = {}
        self.fired: list[str] = []

    def _count(self, op: str) -> int:
        self.calls[op] = self.calls.get(op, 0) + 1
        return self.calls[op]

    def _fires(self, planned: set[int], n: int, what: str) -> bool:
        if n in planned:
            planned.discard(n)
            self.fired.append(what)
            log.warning("scripted fault: %s (call %d)", what, n)
            return True
        return False

    async def create_stream(self, table: TableSpec) -> str:
        self._count("create")
        return await self.inner.create_stream(table)

    async def append(self, stream: str, batch: pa.RecordBatch, offset: int) -> bool:
        n = self._count("append")
        if self._fires(self.script.append_reset, n, "append reset"):
            raise ConnectionLost("scripted: connection reset by peer")
        applied = await self.inner.append(stream, batch, offset)
        if self._fires(self.script.append_answer_lost, n, "append answer lost"):
            raise ConnectionLost("scripted: the answer to an applied append was lost")
        return applied

    async def finalize(self, stream: str) -> int:
        rows = await self.inner.finalize(stream)
        if self.script.crash_after_finalize:
            self.script.crash_after_finalize = False
            self.fired.append("crash after finalize")
            raise Crash("after finalize")
        return rows

    async def commit(self, table: TableSpec, streams: Sequence[str]) -> bool:
        n = self._count("commit")
        if self.script.crash_before_commit:
            self.script.crash_before_commit = False
            self.fired.append("crash before commit")
            raise Crash("before commit")
        if self.script.before_commit is not None:
            await self.script.before_commit()
        done = await self.inner.commit(table, streams)
        if self.script.crash_after_commit:
            self.script.crash_after_commit = False
            self.fired.append("crash after commit")
            raise Crash("after commit")
        if self._fires(self.script.commit_answer_lost, n, "commit answer lost"):
            raise TransientError("scripted: the commit's answer was lost")
        return done
