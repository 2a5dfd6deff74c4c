"""A live line on a terminal while units run in this process: rows and bytes so far.

Reads the ingestor's ``Board`` (what the stages count for the watchdog) twice a second; off when
stderr is not a terminal, so piped output and JSON stay clean.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from service.background import alongside
from service.cli import common
from service.pipeline.progress import Board

# Seconds between two refreshes of the line.
REFRESH_SECONDS = 0.5
# Byte units for the line, largest first.
BYTE_UNITS = (("GB", 1e9), ("MB", 1e6), ("kB", 1e3))


def board_line(board: Board, label: str) -> str:
    """``sweeping: 3 running, 12 done; 1,234,567 rows, 512.3 MB read``."""
    counts = f"{len(board.running)} running, {board.ended} done"
    return f"{label}: {counts}; {board.rows:,} rows, {size(board.bytes)} read"


def size(count: int) -> str:
    for unit, scale in BYTE_UNITS:
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} B"


@contextlib.asynccontextmanager
async def showing(board: Board, label: str) -> AsyncIterator[None]:
    """While the block runs, a transient status line on stderr (terminals only)."""
    if not common.err_console.is_terminal:
        yield
        return
    with common.err_console.status(board_line(board, label)) as status:

        async def refresh() -> None:
            while True:
                await asyncio.sleep(REFRESH_SECONDS)
                status.update(board_line(board, label))

        async with alongside(refresh):
            yield
