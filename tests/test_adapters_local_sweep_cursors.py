"""Sweep cursors in SQLite: written per page, read back by another connection (process)."""

from __future__ import annotations

from pathlib import Path

from service.adapters.local.sweep_cursors import SqliteSweepCursors
from service.ports import SweepCursor


async def test_a_cursor_is_read_back_as_written_and_replaced(tmp_path: Path) -> None:
    path = tmp_path / "sweeps.sqlite3"
    cursors = SqliteSweepCursors(path)
    assert await cursors.get("k") is None
    await cursors.put(SweepCursor("k", "orders/b.csv", 1000, done=False))
    assert await SqliteSweepCursors(path).get("k") == SweepCursor("k", "orders/b.csv", 1000, False)
    await cursors.put(SweepCursor("k", None, 1500, done=True))
    assert await cursors.get("k") == SweepCursor("k", None, 1500, True)
