"""Sweep cursors in SQLite, in a table of their own beside the embedded ledger's file."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from service.errors import TransientError
from service.ports import SweepCursor

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS sweep_cursors (
    key TEXT PRIMARY KEY,
    page_token TEXT,
    published INTEGER NOT NULL,
    done INTEGER NOT NULL
);
"""


class SqliteSweepCursors:
    def __init__(self, path: Path, *, busy_timeout: float = 30.0) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        path.parent.mkdir(parents=True, exist_ok=True)
        self._run(lambda conn: conn.executescript(SCHEMA).close())

    def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        # A connection per call: cursors are written once a page, never on a hot path.
        try:
            connection = sqlite3.connect(self.path, timeout=self.busy_timeout)
            with contextlib.closing(connection), connection:  # one transaction, committed
                return work(connection)
        except sqlite3.Error as exc:
            raise TransientError(f"sweep cursors in {self.path}: {exc}") from exc

    async def get(self, key: str) -> SweepCursor | None:
        def read(conn: sqlite3.Connection) -> SweepCursor | None:
            row = conn.execute(
                "SELECT page_token, published, done FROM sweep_cursors WHERE key = ?", (key,)
            ).fetchone()
            return None if row is None else SweepCursor(key, row[0], int(row[1]), bool(row[2]))

        return await asyncio.to_thread(self._run, read)

    async def put(self, cursor: SweepCursor) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO sweep_cursors VALUES (?, ?, ?, ?)",
                (cursor.key, cursor.page_token, cursor.published, int(cursor.done)),
            )

        await asyncio.to_thread(self._run, write)

    async def close(self) -> None:
        return None
