"""watchdog: a unit lives while it makes progress, and is cancelled once it stops.

A fake clock decides what counts as "too long"; the waits are bounded by counting the
watchdog's checks, never by measuring time.
"""

from __future__ import annotations

import asyncio

import pytest

from service.errors import StageError, TransientError
from service.pipeline.progress import Progress
from service.watchdog import Watchdog

BOUND = 0.04  # the watchdog checks every 10 ms of real time


class Clock:
    """Moves one second each time it is read: every check is well past the bound."""

    def __init__(self) -> None:
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return float(self.reads)


async def never() -> None:
    await asyncio.Event().wait()


async def test_a_unit_is_alive_while_it_waits_to_start() -> None:
    watchdog = Watchdog(Progress(), BOUND, Clock())
    assert watchdog.alive()


async def test_a_unit_without_progress_is_cancelled_and_the_stage_named() -> None:
    progress = Progress()
    watchdog = Watchdog(progress, BOUND, Clock())
    unit = asyncio.ensure_future(never())
    with progress.working("extract"), progress.working("parse"):
        await asyncio.wait_for(watchdog.watch(unit), 10)
    await asyncio.gather(unit, return_exceptions=True)
    assert unit.cancelled()
    assert watchdog.stalled == "extract"
    assert not watchdog.alive()  # the lease is not renewed any more


async def test_steps_keep_a_unit_alive() -> None:
    progress = Progress()
    clock = Clock()
    watchdog = Watchdog(progress, BOUND, clock)
    moving = True

    async def spool() -> None:
        while moving:  # a step on every turn of the loop: before every check, surely
            progress.advance("spool")
            await asyncio.sleep(0)

    unit = asyncio.ensure_future(never())
    with progress.working("spool"):
        stepping = asyncio.create_task(spool())
        watch = asyncio.create_task(watchdog.watch(unit))
        for _ in range(1000):  # bounded: checks come every 10 ms
            if clock.reads >= 6:
                break
            await asyncio.sleep(0.01)
        assert clock.reads >= 6
        assert not unit.done()  # every check found progress, though the clock ran far ahead
        moving = False
        await stepping
        await asyncio.wait_for(watch, 10)
    await asyncio.gather(unit, return_exceptions=True)
    assert unit.cancelled()
    assert watchdog.stalled == "spool"


async def test_a_load_job_the_warehouse_reports_running_keeps_a_unit_alive() -> None:
    progress = Progress()
    watchdog = Watchdog(progress, BOUND, Clock())
    asked: list[bool] = []

    async def running() -> bool:
        asked.append(len(asked) < 5)  # running for five checks, then never heard of again
        return asked[-1]

    unit = asyncio.ensure_future(never())
    with progress.working("load"), progress.probing(running):
        await asyncio.wait_for(watchdog.watch(unit), 10)
    await asyncio.gather(unit, return_exceptions=True)
    assert unit.cancelled()
    assert asked == [True] * 5 + [False]  # alive while the job ran, cancelled at the first "no"
    assert watchdog.stalled == "load"


async def test_a_failing_probe_is_no_progress() -> None:
    progress = Progress()
    watchdog = Watchdog(progress, BOUND, Clock())

    async def failing() -> bool:
        raise TransientError("jobs.get unavailable")

    unit = asyncio.ensure_future(never())
    with progress.working("load"), progress.probing(failing):
        await asyncio.wait_for(watchdog.watch(unit), 10)
    await asyncio.gather(unit, return_exceptions=True)
    assert watchdog.stalled == "load"


async def test_a_unit_that_ends_is_left_alone() -> None:
    watchdog = Watchdog(Progress(), BOUND, Clock())
    unit = asyncio.ensure_future(asyncio.sleep(0))
    await asyncio.wait_for(watchdog.watch(unit), 10)
    assert watchdog.stalled is None


async def test_a_guarded_stall_is_a_transient_failure_of_the_stage() -> None:
    progress = Progress()
    watchdog = Watchdog(progress, BOUND, Clock())

    async def stuck() -> None:
        with progress.working("parse"):
            await never()

    with pytest.raises(StageError) as failed:
        await asyncio.wait_for(watchdog.guard("orders:gs://landing/a.csv#1", stuck()), 10)
    assert failed.value.stage == "parse"
    assert failed.value.transient
    assert "no progress for 0.04 s" in str(failed.value)


async def test_a_guarded_unit_cancelled_from_outside_stays_cancelled() -> None:
    watchdog = Watchdog(Progress(), 3600.0)
    outer = asyncio.create_task(watchdog.guard("u", never()))
    await asyncio.sleep(0)
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer
    assert watchdog.stalled is None
