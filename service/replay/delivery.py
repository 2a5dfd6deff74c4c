"""Sending recorded requests to the service: over HTTP to a URL, or in-process through the app.

Both are one code path: an httpx client POSTs each request. In-process, the client's transport
is the app itself (httpx's ASGITransport over ``create_app``, serving for the run), so an
in-process replay gets what a platform push gets: draining, the force policy, recording, the
log line, the same answer. Every way yields a ``Result``: the HTTP status and the JSON body.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from service import answers
from service.recording import RecordedRequest, event_of
from service.settings import Settings, replace_settings

if TYPE_CHECKING:
    from quart import Quart

# Hop-by-hop and per-connection headers of a recorded request, never sent again.
NOT_RESENT = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "te", "expect"}
)
# Where in-process requests go: the host is never resolved, the app is the transport.
IN_PROCESS_URL = "http://in-process/"

Tick = Callable[[], None]


@dataclass(frozen=True)
class Result:
    source: str
    http_status: int  # 0 when nothing answered (dry run, or the request never completed)
    body: dict[str, Any]
    seconds: float = 0.0

    @property
    def status(self) -> str:
        return str(self.body.get("status", answers.Refusal.ERROR))

    @property
    def ok(self) -> bool:
        return answers.succeeded(self.status, self.http_status)


@dataclass(frozen=True)
class Sending:
    """How requests are sent: how many at once, forced or not, extra headers, answer timeout."""

    concurrency: int
    force: bool = False
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float | None = None


class Unreachable(Exception):
    """Nothing listens at the URL: the whole replay stops with one line."""


async def over_http(
    url: str, requests: list[RecordedRequest], sending: Sending, tick: Tick
) -> list[Result]:
    """No local settings or pipelines needed: the service at the URL has its own."""
    timeout = httpx.Timeout(sending.timeout, connect=10.0)
    async with httpx.AsyncClient(timeout=timeout) as client:
        return await _send(client, url, requests, sending, tick)


async def in_process(
    settings: Settings, requests: list[RecordedRequest], sending: Sending, tick: Tick
) -> list[Result]:
    async with serving(settings, force=sending.force) as app:
        # httpx logs each request at INFO; the route's own line for each event says more.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        # Quart's __call__ is typed with hypercorn's scope types, httpx's with plain dicts.
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, timeout=None) as client:
            return await _send(client, IN_PROCESS_URL, requests, sending, tick)


@contextlib.asynccontextmanager
async def serving(settings: Settings, *, force: bool) -> AsyncIterator[Quart]:
    """The app for an in-process run, serving: its backends open before, close after.

    The operator is the caller, on the backends' own credentials: there is no token to check,
    a --force is its own permission, and answers keep the errors' own text.
    """
    from service.app import create_app

    operator = replace_settings(
        settings,
        auth_audience=None,
        auth_allowed_emails=(),
        allow_force=settings.allow_force or force,
    )
    app = create_app(operator, detailed_answers=True)
    await app.startup()
    try:
        yield app
        await app.extensions["runtime"].settle()  # a sweep's units run after its answer
    finally:
        await app.shutdown()


async def _send(
    client: httpx.AsyncClient,
    url: str,
    requests: list[RecordedRequest],
    sending: Sending,
    tick: Tick,
) -> list[Result]:
    async def one(request: RecordedRequest) -> Result:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in NOT_RESENT}
        headers.update(sending.headers)
        if sending.force:
            headers[answers.FORCE_HEADER] = "1"
        started = time.perf_counter()
        try:
            response = await client.post(url, headers=headers, content=request.body)
        except httpx.ConnectError as exc:
            raise Unreachable(f"cannot reach {url}: {exc or type(exc).__name__}") from exc
        except httpx.HTTPError as exc:
            reason = f"{type(exc).__name__}: {exc}".rstrip(": ")
            failed = {"status": answers.Refusal.ERROR.value, "reason": reason}
            return Result(request.source, 0, failed, time.perf_counter() - started)
        elapsed = time.perf_counter() - started
        answer: dict[str, Any] = {"event_id": _event_id(request), **_body(response)}
        return Result(request.source, response.status_code, answer, elapsed)

    try:
        return await _bounded(requests, sending.concurrency, tick, one)
    except* Unreachable as group:
        raise group.exceptions[0] from None


async def _bounded(
    requests: list[RecordedRequest],
    concurrency: int,
    tick: Tick,
    one: Callable[[RecordedRequest], Awaitable[Result]],
) -> list[Result]:
    """Run ``one`` over the requests, at most ``concurrency`` at a time, results in order."""
    slots = asyncio.Semaphore(concurrency)

    async def guarded(request: RecordedRequest) -> Result:
        async with slots:
            result = await one(request)
        tick()
        return result

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(guarded(r)) for r in requests]
    return [t.result() for t in tasks]


def _event_id(request: RecordedRequest) -> str | None:
    """The id as decoded here: the service's answers do not echo what the request said."""
    event = event_of(request)
    return None if isinstance(event, str) else event.meta.event_id


def _body(response: httpx.Response) -> dict[str, Any]:
    error = answers.Refusal.ERROR.value
    try:
        data = response.json()
    except ValueError:
        return {"status": error, "reason": f"not JSON: {response.text[:200]!r}"}
    if not isinstance(data, dict):
        return {"status": error, "reason": f"unexpected answer: {data!r}"[:200]}
    return data
