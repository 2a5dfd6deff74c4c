"""The time a unit may spend reading its file (extract, parse, validate, spool), then it fails.

A push waits at most the ack deadline for its answer, and Cloud Run ends a request at its
timeout (the plan makes them equal). A file that takes longer than that to read would be cut off
every time, start again on every redelivery and end in the dead-letter topic without a word.
So reading stops at ``INGEST_READ_SECONDS`` (by default four fifths of the ack deadline, leaving
the rest to the load job) and the unit fails PERMANENT, saying how far it got; the load itself
is bounded by the warehouse. A unit that failed only because the platform was slow that time
can be run again with ``ingest ledger retry``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from service.errors import PermanentError, StageError
from service.pipeline.context import UnitContext
from service.pipeline.spool_budget import mib

# How long before the deadline the stage to blame is noted: cancelling ends every stage.
NOTE_AHEAD_SECONDS = 0.001


@asynccontextmanager
async def reading_deadline(seconds: float, ctx: UnitContext) -> AsyncIterator[None]:
    loop = asyncio.get_running_loop()
    when = loop.time() + seconds
    blamed: list[str] = []
    note = loop.call_at(when - NOTE_AHEAD_SECONDS, lambda: blamed.append(ctx.progress.stage))
    try:
        async with asyncio.timeout_at(when):
            yield
    except TimeoutError:
        cause = PermanentError(
            f"reading the file ({mib(ctx.object.size)}) took longer than {seconds:.0f} s, the "
            "time one unit may take within the request timeout (INGEST_READ_SECONDS): split "
            "the file, or load it with `bq load`; `ingest ledger retry` runs it again"
        )
        raise StageError(blamed[0] if blamed else ctx.progress.stage, str(ctx.key), cause) from None
    finally:
        note.cancel()
