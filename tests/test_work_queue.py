"""The embedded work topic: messages decoded as a push, run with bounded concurrency, retried."""

from __future__ import annotations

import asyncio

from service.events.work import encode_work
from service.models import Event, ObjectInfo, ObjectRef, UnitRequested
from service.results import Outcome, Status
from service.work_queue import InProcessWork


def info(index: int) -> ObjectInfo:
    return ObjectInfo(ObjectRef("landing", f"orders/{index}.csv", 1), 1)


async def test_each_message_reaches_the_handler_at_most_concurrency_at_a_time() -> None:
    running, most, seen = 0, 0, []

    async def handler(event: Event) -> Outcome:
        nonlocal running, most
        assert isinstance(event, UnitRequested)
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.01)
        running -= 1
        seen.append(event.object.ref.name)
        return Outcome(Status.LOADED, event.meta.event_id)

    work = InProcessWork(3, keep=True)
    work.bind(handler)
    for index in range(20):
        await work.publish(*encode_work("orders", info(index)))
    await asyncio.wait_for(work.drain(), 30)
    await work.close()
    assert sorted(seen) == sorted(f"orders/{i}.csv" for i in range(20))
    assert most == 3
    assert [o.status for o in work.kept or []] == [Status.LOADED] * 20


async def test_a_busy_answer_is_delivered_again() -> None:
    answers = [Status.BUSY, Status.TRANSIENT, Status.LOADED]

    async def handler(event: Event) -> Outcome:
        return Outcome(answers.pop(0), event.meta.event_id)

    work = InProcessWork(1, keep=True)
    work.bind(handler)
    await work.publish(*encode_work("orders", info(1)))
    await asyncio.wait_for(work.drain(), 30)
    await work.close()
    assert answers == [] and [o.status for o in work.kept or []] == [Status.LOADED]
