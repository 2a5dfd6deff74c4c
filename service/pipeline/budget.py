"""A global budget of bytes buffered between the stages, shared by every unit in flight.

The extract stage takes bytes from the budget before it hands a chunk on; they are given back
once the rows made from them are written to the spool (or, for Parquet, once the chunk is on
disk). So the bytes held in memory by all units together stay near the budget, however many
units run and however fast each stage is.

Never stuck: a unit whose parser is waiting for input (it needs more bytes to complete a block
or a long record) may always take more, even past the budget. If every unit waited for the
budget, each parser would be busy or blocked downstream, and downstream needs no budget to go
on and give bytes back. The overshoot is bounded by what one unit's stages hold at once (a few
blocks) per unit in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol


class Account(Protocol):
    held: int  # bytes this account has taken and not given back


class Counted:
    """Bytes taken from a fixed capacity: in use now, at the most, and per account (the byte
    budget here and the spool budget count alike; each decides when a take may happen)."""

    def __init__(self, capacity: int, what: str) -> None:
        if capacity <= 0:
            raise ValueError(f"the {what} must be positive")
        self.capacity = capacity
        self.used = 0
        self.peak = 0

    def _count_in(self, account: Account, size: int) -> None:
        self.used += size
        self.peak = max(self.peak, self.used)
        account.held += size

    def _count_out(self, account: Account, size: int) -> int:
        """Give back ``size`` bytes of the account's (no more than it holds); how many."""
        size = min(size, account.held)
        if size > 0:
            self.used -= size
            account.held -= size
        return size


class ByteBudget(Counted):
    """Used from the event loop's thread only (the parse thread reaches it through the loop)."""

    def __init__(self, capacity: int) -> None:
        super().__init__(capacity, "byte budget")
        self._changed = asyncio.Event()

    def allowance(self, starved: Callable[[], bool] = lambda: False) -> Allowance:
        """One unit's account; ``starved`` says whether its parser is waiting for input."""
        return Allowance(self, starved)

    def wake(self) -> None:
        """Make every waiter look again (bytes were given back, or a parser starves)."""
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _take(self, account: Allowance, size: int) -> None:
        while not self._fits(account, size):
            await self._changed.wait()
        self._count_in(account, size)

    def _fits(self, account: Allowance, size: int) -> bool:
        return account.held == 0 or account.starved() or self.used + size <= self.capacity

    def _give(self, account: Allowance, size: int) -> None:
        if self._count_out(account, size):
            self.wake()


class Allowance:
    def __init__(self, budget: ByteBudget, starved: Callable[[], bool]) -> None:
        self.budget = budget
        self.starved = starved
        self.held = 0

    async def acquire(self, size: int) -> None:
        await self.budget._take(self, size)

    def release(self, size: int) -> None:
        self.budget._give(self, size)

    def release_all(self) -> None:
        self.budget._give(self, self.held)
