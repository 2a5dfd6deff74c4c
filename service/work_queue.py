"""The embedded backend's work topic: a bounded queue in this process (not an adapter: it
delivers to the use case itself, as the platform's push would).

A sweep's work messages are delivered as a push would deliver them: each is wrapped in a push
envelope, decoded by ``service.events.decode`` and handed to the same handler the route calls,
``concurrency`` at a time. An answer the platform would redeliver (busy, transient) is tried
again after a backoff, as Pub/Sub's retry policy would, up to ``MAX_ATTEMPTS``; the next sweep
finds a unit given up on. ``publish`` waits while ``backlog`` messages are queued, so memory
stays bounded for any listing.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime

import orjson

from service import answers
from service.errors import IngestError
from service.events import decode
from service.models import Event
from service.results import Outcome

log = logging.getLogger(__name__)

# Deliveries of one message before it is given up (Pub/Sub would dead-letter it).
MAX_ATTEMPTS = 12
# Backoff between deliveries: the first, and the most (Pub/Sub's retry policy, scaled down).
FIRST_BACKOFF_SECONDS = 0.05
MAX_BACKOFF_SECONDS = 2.0
# Messages waiting before publish() waits too.
BACKLOG = 10_000
# The subscription named in the envelopes (informative only).
SUBSCRIPTION = "in-process/work"

Handler = Callable[[Event], Awaitable[Outcome]]


class InProcessWork:
    def __init__(self, concurrency: int, *, backlog: int = BACKLOG, keep: bool = False) -> None:
        self.concurrency = concurrency
        self.handler: Handler | None = None
        self._queue: asyncio.Queue[tuple[bytes, dict[str, str]]] | None = None
        self._backlog = backlog
        self._workers: list[asyncio.Task[None]] = []
        # ``keep``: the final outcome of every message is kept (``ingest sweep`` shows them).
        self.kept: list[Outcome] | None = [] if keep else None

    def bind(self, handler: Handler) -> None:
        self.handler = handler

    async def publish(self, data: bytes, attributes: Mapping[str, str]) -> None:
        if self._queue is None:  # made on first use: in the loop that serves
            self._queue = asyncio.Queue(self._backlog)
            self._workers = [asyncio.create_task(self._work()) for _ in range(self.concurrency)]
        await self._queue.put((data, dict(attributes)))

    async def drain(self) -> None:
        """Until every message published so far has had its last delivery."""
        if self._queue is not None:
            await self._queue.join()

    async def _work(self) -> None:
        assert self._queue is not None
        while True:
            data, attributes = await self._queue.get()
            try:
                outcome = await self._deliver(data, attributes)
                if self.kept is not None and outcome is not None:
                    self.kept.append(outcome)
            except Exception:  # a bug must not stop the queue: the next sweep finds the unit
                log.exception("in-process work message failed")
            finally:
                self._queue.task_done()

    async def _deliver(self, data: bytes, attributes: dict[str, str]) -> Outcome | None:
        assert self.handler is not None, "bind() the handler before publishing"
        envelope = push_envelope(data, attributes)
        event = decode({"content-type": "application/json"}, envelope)
        backoff = FIRST_BACKOFF_SECONDS
        outcome: Outcome | None = None
        for _ in range(MAX_ATTEMPTS):
            try:
                outcome = await self.handler(event)
            except IngestError as exc:
                log.warning("in-process work message: %s", exc)
                outcome = None
            if outcome is not None and not answers.is_retryable(outcome.status.value):
                return outcome
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
        log.error("in-process work message given up after %d deliveries", MAX_ATTEMPTS)
        return outcome

    async def close(self) -> None:
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers = []


def push_envelope(data: bytes, attributes: Mapping[str, str]) -> bytes:
    """A wrapped push request's body, as Pub/Sub sends one."""
    message = {
        "data": base64.b64encode(data).decode(),
        "attributes": dict(attributes),
        "messageId": f"local-{uuid.uuid4().hex}",
        "publishTime": datetime.now(UTC).isoformat(),
    }
    return orjson.dumps({"message": message, "subscription": SUBSCRIPTION})
