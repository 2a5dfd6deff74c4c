"""A global budget of bytes buffered between the stages, shared by every unit in flight.

The extract stage takes bytes from the budget before it hands a chunk on; they are given back
once the rows made from them are written to the spool (or, for Parquet, once the chunk is on
disk). So the bytes held in memory by all units together stay near the budget, however many
units run and however fast each stage is.

Deadlock freedom: a unit's parser may need a whole block before it emits anything, so a unit
may always hold up to its ``reserve`` even when the shared budget is spent; and a unit holding
nothing may always take what it needs (a record longer than the whole budget still passes).
Total memory is therefore bounded by ``capacity + units in flight x reserve``.
"""

from __future__ import annotations

import asyncio


class ByteBudget:
    """Used from the event loop's thread only (the parse thread reaches it through the loop)."""

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("the byte budget must be positive")
        self.capacity = capacity
        self.used = 0
        self.peak = 0
        self._freed = asyncio.Event()

    def allowance(self, reserve: int) -> Allowance:
        """One unit's account against this budget."""
        return Allowance(self, reserve)

    async def _take(self, account: Allowance, size: int) -> None:
        while not self._fits(account, size):
            await self._freed.wait()
        self.used += size
        self.peak = max(self.peak, self.used)
        account.held += size

    def _fits(self, account: Allowance, size: int) -> bool:
        return (
            account.held == 0
            or account.held + size <= account.reserve
            or self.used + size <= self.capacity
        )

    def _give(self, account: Allowance, size: int) -> None:
        size = min(size, account.held)
        if size <= 0:
            return
        self.used -= size
        account.held -= size
        # Wake every waiter once; each checks again whether its request fits now.
        freed, self._freed = self._freed, asyncio.Event()
        freed.set()


class Allowance:
    def __init__(self, budget: ByteBudget, reserve: int) -> None:
        self.budget = budget
        self.reserve = reserve
        self.held = 0

    async def acquire(self, size: int) -> None:
        await self.budget._take(self, size)

    def release(self, size: int) -> None:
        self.budget._give(self, size)

    def release_all(self) -> None:
        self.budget._give(self, self.held)
