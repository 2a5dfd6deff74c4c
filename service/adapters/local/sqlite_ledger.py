"""The embedded ledger: SQLite in WAL mode, safe for several processes on one machine.

Put-if-absent is INSERT OR IGNORE on the primary key; compare-and-set is an UPDATE guarded by
the version column. SQLite serialises writers across processes with its file lock, so each
primitive is atomic without an explicit transaction. Several processes may share the file: each
has its own connection, and SQLite's busy timeout makes a writer wait for another's commit.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from service.codec import from_doc, json_default, to_doc
from service.errors import TransientError
from service.models import LedgerRecord, Stored, UnitState
from service.ports import EVERY_RECORD, LedgerQuery

SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger (
    key TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    state TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_state_updated ON ledger (state, updated_at);
CREATE INDEX IF NOT EXISTS ledger_pipeline_state_updated
    ON ledger (json_extract(doc, '$.pipeline'), state, updated_at);
CREATE INDEX IF NOT EXISTS ledger_name_state_generation
    ON ledger (json_extract(doc, '$.name_key'), state, json_extract(doc, '$.generation'));
"""
# The pipeline, as the index above spells it (SQLite uses an expression index only for a query
# that repeats the expression): no column of its own, so older files need no migration.
PIPELINE = "json_extract(doc, '$.pipeline')"
# A name's last completed generation, spelled as its index is: a seek, then one row.
LAST_COMPLETED = (
    "SELECT doc, version FROM ledger WHERE json_extract(doc, '$.name_key') = ? AND state = ?"
    " ORDER BY json_extract(doc, '$.generation') DESC LIMIT 1"
)

T = TypeVar("T")


class SqliteLedgerStore:
    def __init__(self, path: Path, *, busy_timeout: float = 30.0) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        path.parent.mkdir(parents=True, exist_ok=True)
        # One thread owns one long-lived connection: calls from this process queue there
        # instead of fighting over the file lock, and no call pays for opening the file (or
        # for the WAL checkpoint SQLite runs when the last connection closes).
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-ledger")
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        try:
            self._thread.submit(self._open).result()
        except sqlite3.Error as exc:  # unwritable or not a database: one line, as any call's
            self._thread.shutdown(wait=False)
            raise TransientError(f"sqlite ledger {path}: {exc}") from exc

    def _open(self) -> sqlite3.Connection:
        if self._conn is None:
            # Autocommit: each statement is its own transaction, so the write lock is brief.
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                # WAL + NORMAL: no fsync per commit (5x the throughput on a busy disk). A crash of
                # the process loses nothing; a power cut may lose the last commits, which only
                # re-runs those units, and their loads are adopted by job id: still exactly once.
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.executescript(SCHEMA)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """On the store's thread: run ``fn``; a failed connection is reopened next time."""
        try:
            return fn(self._open())
        except sqlite3.Error:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            raise

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise TransientError(f"sqlite ledger {self.path} is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._thread, self._call, fn)
        except sqlite3.Error as exc:
            # Locked past the busy timeout, unwritable, corrupt: the ledger cannot answer, so
            # the event must be retried (never acknowledged on a guess).
            raise TransientError(f"sqlite ledger {self.path}: {exc}") from exc

    async def get(self, key: str) -> Stored | None:
        def op(conn: sqlite3.Connection) -> Stored | None:
            row = conn.execute("SELECT doc, version FROM ledger WHERE key = ?", (key,)).fetchone()
            return None if row is None else _stored(row)

        return await self._run(op)

    async def create(self, record: LedgerRecord) -> str | None:
        def op(conn: sqlite3.Connection) -> str | None:
            cur = conn.execute(
                "INSERT OR IGNORE INTO ledger (key, version, state, updated_at, doc)"
                " VALUES (?, 1, ?, ?, ?)",
                (record.key, record.state.value, _sortable(record.updated_at), _dump(record)),
            )
            return "1" if cur.rowcount == 1 else None

        return await self._run(op)

    async def replace(self, record: LedgerRecord, expected_version: str) -> str | None:
        new_version = int(expected_version) + 1

        def op(conn: sqlite3.Connection) -> str | None:
            cur = conn.execute(
                "UPDATE ledger SET version = ?, state = ?, updated_at = ?, doc = ?"
                " WHERE key = ? AND version = ?",
                (
                    new_version,
                    record.state.value,
                    _sortable(record.updated_at),
                    _dump(record),
                    record.key,
                    int(expected_version),
                ),
            )
            return str(new_version) if cur.rowcount == 1 else None

        return await self._run(op)

    async def list(self, query: LedgerQuery = EVERY_RECORD, limit: int = 100) -> list[Stored]:
        where, params = _where(query)
        sql = f"SELECT doc, version FROM ledger {where} ORDER BY updated_at DESC LIMIT ?"

        def op(conn: sqlite3.Connection) -> list[Stored]:
            return [_stored(row) for row in conn.execute(sql, (*params, limit))]

        return await self._run(op)

    async def count(self, query: LedgerQuery, *, up_to: int) -> int:
        where, params = _where(query)
        # The inner LIMIT stops the scan at up_to rows, as the page shows "at least" beyond it.
        sql = f"SELECT count(*) FROM (SELECT 1 FROM ledger {where} LIMIT ?)"

        def op(conn: sqlite3.Connection) -> int:
            found: int = conn.execute(sql, (*params, up_to)).fetchone()[0]
            return found

        return await self._run(op)

    async def last_completed(self, name_key: str) -> LedgerRecord | None:
        def op(conn: sqlite3.Connection) -> LedgerRecord | None:
            row = conn.execute(LAST_COMPLETED, (name_key, UnitState.COMPLETED.value)).fetchone()
            return None if row is None else _stored(row).record

        return await self._run(op)

    async def ping(self) -> None:
        await self._run(lambda conn: conn.execute("SELECT 1").fetchone())

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True

        def shut() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await asyncio.get_running_loop().run_in_executor(self._thread, shut)
        self._thread.shutdown(wait=True)


def _where(query: LedgerQuery) -> tuple[str, list[str]]:
    """The WHERE clause of the query's filters, and its parameters."""
    clauses, params = [], []
    if query.pipeline is not None:
        clauses.append(f"{PIPELINE} = ?")
        params.append(query.pipeline)
    if query.state is not None:
        clauses.append("state = ?")
        params.append(query.state.value)
    if query.since is not None:
        clauses.append("updated_at >= ?")
        params.append(_sortable(query.since))
    return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), params


def _dump(record: LedgerRecord) -> str:
    return json.dumps(to_doc(record), default=json_default)


def _stored(row: tuple[str, int]) -> Stored:
    return Stored(from_doc(json.loads(row[0])), str(row[1]))


def _sortable(instant: datetime) -> str:
    """Fixed-width UTC text, so SQL string comparison orders instants correctly."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
