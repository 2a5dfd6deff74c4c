"""A budget of bytes the units of one instance may keep in temporary files, together.

The Parquet spool, a Parquet source (read with random access, so spooled first) and the
quarantine are temporary files. On Cloud Run the file system is memory and counts against the
instance's limit: a file that outgrew it would take the instance down, with every unit in it,
and come back to do the same. So every byte written to a temporary file is taken from this
budget first (``INGEST_SPOOL_MAX_BYTES``). A unit that alone needs more than the whole budget
fails PERMANENT with a reason that says how much it needed; a unit that finds the budget held by
others fails TRANSIENT, so Pub/Sub brings it back once they are done.

Used from the event loop and from worker threads (the parse thread, the spool's writer): a lock
keeps the count.
"""

from __future__ import annotations

import threading

from service.errors import PermanentError, TransientError
from service.pipeline.budget import Counted

MIB = 1024 * 1024
SETTING = "INGEST_SPOOL_MAX_BYTES"


def mib(size: int) -> str:
    return f"{size / MIB:.1f} MiB" if size >= MIB else f"{size} bytes"


class SpoolBudget(Counted):
    def __init__(self, capacity: int) -> None:
        super().__init__(capacity, "spool budget")
        self._lock = threading.Lock()

    def account(self) -> SpoolAccount:
        """One unit's share, given back with ``release_all`` when the unit ends."""
        return SpoolAccount(self)

    def fits(self, size: int, what: str) -> None:
        """PermanentError when ``size`` bytes could never fit, whoever else holds what."""
        if size > self.capacity:
            raise self.too_large(size, what)

    def too_large(self, size: int, what: str, *, growing: bool = False) -> PermanentError:
        more = "more than " if growing else ""
        return PermanentError(
            f"{what} needs {more}{mib(size)} of spool, the instance allows {mib(self.capacity)} "
            f"({SETTING}; on Cloud Run temporary files are memory): split the file, or give "
            "the service more memory and raise the setting with it"
        )


class SpoolAccount:
    def __init__(self, budget: SpoolBudget) -> None:
        self.budget = budget
        self.held = 0

    def take(self, size: int, what: str) -> None:
        """Room for ``size`` more bytes of ``what``, or the error that says why there is none."""
        budget = self.budget
        with budget._lock:
            if self.held + size > budget.capacity:
                raise budget.too_large(self.held + size, what, growing=True)
            if budget.used + size > budget.capacity:
                others = budget.used - self.held
                raise TransientError(
                    f"{what}: the spool is full ({mib(others)} of {mib(budget.capacity)} "
                    f"held by other units, {SETTING}); retried once they are done"
                )
            budget._count_in(self, size)

    def give_back(self, size: int) -> None:
        with self.budget._lock:
            self.budget._count_out(self, size)

    def release_all(self) -> None:
        self.give_back(self.held)
