"""Retry rounds: send again what the platform would redeliver (busy, unavailable), a few times."""

from __future__ import annotations

import time
from collections.abc import Callable

from service.answers import is_retryable
from service.recording import RecordedRequest
from service.replay.delivery import Result

# Wait before the first retry round; each later round waits twice as long.
RETRY_DELAY_SECONDS = 1.0


def with_retries(
    run: Callable[[list[RecordedRequest]], list[Result]],
    requests: list[RecordedRequest],
    retries: int,
    announce: Callable[[int, float], None],
) -> list[Result]:
    """Run, then up to ``retries`` rounds of the retryable ones; ``announce(count, delay)``
    is told before each round."""
    results = run(requests)
    for round_number in range(retries):
        again = [i for i, r in enumerate(results) if is_retryable(r.status)]
        if not again:
            break
        delay = RETRY_DELAY_SECONDS * 2**round_number
        announce(len(again), delay)
        time.sleep(delay)
        for index, result in zip(again, run([requests[i] for i in again]), strict=True):
            results[index] = result
    return results
