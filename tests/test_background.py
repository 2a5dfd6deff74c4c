"""service/background.py: work beside a block, cancelled and awaited when the block ends."""

from __future__ import annotations

import asyncio

import pytest

from service.background import alongside


async def test_the_work_runs_while_the_block_does_and_stops_with_it() -> None:
    seen: list[str] = []
    started = asyncio.Event()

    async def work() -> None:
        seen.append("started")
        started.set()
        try:
            await asyncio.Event().wait()  # until cancelled
        finally:
            seen.append("stopped")

    async with alongside(work):
        await started.wait()
        assert seen == ["started"]
    assert seen == ["started", "stopped"]  # awaited: its clean-up ran before the block ended


async def test_an_error_in_the_block_still_stops_the_work() -> None:
    stopped = asyncio.Event()

    async def work() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    with pytest.raises(ValueError, match="boom"):
        async with alongside(work):
            await asyncio.sleep(0)
            raise ValueError("boom")
    assert stopped.is_set()
