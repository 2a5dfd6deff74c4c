"""The byte budget shared by all units: bounded, and never stuck while a parser needs input."""

from __future__ import annotations

import asyncio

from service.pipeline.budget import ByteBudget


async def test_takes_wait_when_the_budget_is_spent_and_resume_on_release() -> None:
    budget = ByteBudget(100)
    first, second = budget.allowance(), budget.allowance()
    await first.acquire(90)
    await second.acquire(5)
    waiting = asyncio.create_task(second.acquire(50))
    await asyncio.sleep(0)
    assert not waiting.done() and budget.used == 95
    first.release(60)
    await asyncio.wait_for(waiting, 1)
    assert budget.used == 85 and second.held == 55


async def test_a_unit_holding_nothing_always_gets_what_it_needs() -> None:
    budget = ByteBudget(100)
    hog, big = budget.allowance(), budget.allowance()
    await hog.acquire(100)
    await asyncio.wait_for(big.acquire(500), 1)  # one record longer than the whole budget
    assert budget.peak == 600


async def test_a_starved_parser_gets_more_past_the_budget() -> None:
    budget = ByteBudget(10)
    starved = False
    other, unit = budget.allowance(), budget.allowance(lambda: starved)
    await other.acquire(10)
    await unit.acquire(1)
    waiting = asyncio.create_task(unit.acquire(5))
    await asyncio.sleep(0)
    assert not waiting.done()
    starved = True
    budget.wake()
    await asyncio.wait_for(waiting, 1)
    assert budget.used == 16


async def test_release_all_returns_everything_and_wakes_waiters() -> None:
    budget = ByteBudget(10)
    a, b = budget.allowance(), budget.allowance()
    await a.acquire(10)
    await b.acquire(1)
    waiting = asyncio.create_task(b.acquire(5))
    await asyncio.sleep(0)
    assert not waiting.done()
    a.release_all()
    await asyncio.wait_for(waiting, 1)
    assert a.held == 0 and budget.used == 6
