"""How replay runs each recorded request: over HTTP, in-process, or only decoded (dry run).

Every way yields the same ``Result``: the HTTP status the service answered (or would have) and
its JSON body, so the command renders and judges them alike.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from service.cli.common import open_ingestor
from service.errors import EnvelopeError, PermanentError, TransientError, UnsupportedMediaError
from service.events import decode
from service.ingest import Ingestor
from service.models import Ignored, ObjectFinalized, SweepRequested, UnitKey
from service.pipeline.config import PipelineSet
from service.recording import RecordedRequest
from service.settings import Settings

# Outcomes that leave nothing to do: everything else makes replay exit non-zero.
DONE = frozenset({"loaded", "duplicate", "ignored", "would-run", "would-sweep", "would-ignore"})
# Asks the service to re-run finished units; it obeys only with INGEST_ALLOW_FORCE=true.
FORCE_HEADER = "X-Ingest-Force"
# Hop-by-hop and per-connection headers of a recorded request, never sent again.
NOT_RESENT = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "te", "expect"}
)

Tick = Callable[[], None]


@dataclass(frozen=True)
class Result:
    source: str
    http_status: int  # 0 when nothing answered (dry run, or the request never completed)
    body: dict[str, Any]
    seconds: float = 0.0

    @property
    def status(self) -> str:
        return str(self.body.get("status", "error"))

    @property
    def ok(self) -> bool:
        return self.status in DONE and self.http_status < 400


class Unreachable(Exception):
    """Nothing listens at the URL: the whole replay stops with one line."""


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


async def over_http(
    url: str,
    requests: list[RecordedRequest],
    *,
    concurrency: int,
    force: bool,
    extra_headers: dict[str, str],
    request_timeout: float,
    tick: Tick,
) -> list[Result]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(request_timeout, connect=10.0)) as client:

        async def one(request: RecordedRequest) -> Result:
            headers = {k: v for k, v in request.headers.items() if k.lower() not in NOT_RESENT}
            headers.update(extra_headers)
            if force:
                headers[FORCE_HEADER] = "1"
            started = time.perf_counter()
            try:
                response = await client.post(url, headers=headers, content=request.body)
            except httpx.ConnectError as exc:
                raise Unreachable(f"cannot reach {url}: {exc or type(exc).__name__}") from exc
            except httpx.HTTPError as exc:
                reason = f"{type(exc).__name__}: {exc}".rstrip(": ")
                failed = {"status": "error", "reason": reason}
                return Result(request.source, 0, failed, time.perf_counter() - started)
            elapsed = time.perf_counter() - started
            answer: dict[str, Any] = {"event_id": _event_id(request), **_body(response)}
            return Result(request.source, response.status_code, answer, elapsed)

        try:
            return await _bounded(requests, concurrency, tick, one)
        except* Unreachable as group:
            raise group.exceptions[0] from None


def _event_id(request: RecordedRequest) -> str | None:
    """The id as decoded here: the service's answers do not echo what the request said."""
    try:
        return decode(request.headers, request.body).meta.event_id
    except (EnvelopeError, UnsupportedMediaError):
        return None


def _body(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {"status": "error", "reason": f"not JSON: {response.text[:200]!r}"}
    if not isinstance(data, dict):
        return {"status": "error", "reason": f"unexpected answer: {data!r}"[:200]}
    return data


async def in_process(
    settings: Settings,
    pipelines: PipelineSet,
    requests: list[RecordedRequest],
    *,
    concurrency: int,
    force: bool,
    tick: Tick,
) -> list[Result]:
    async with open_ingestor(settings, pipelines) as ingestor:

        async def one(request: RecordedRequest) -> Result:
            started = time.perf_counter()
            status, body = await _handle(ingestor, request, force)
            return Result(request.source, status, body, time.perf_counter() - started)

        return await _bounded(requests, concurrency, tick, one)


async def _handle(
    ingestor: Ingestor, request: RecordedRequest, force: bool
) -> tuple[int, dict[str, Any]]:
    """What POST / would answer, without HTTP: the same decoding, outcome and status."""
    from service.ingest import Outcome, Status
    from service.routes.events import HTTP_STATUS

    try:
        event = decode(request.headers, request.body)
    except EnvelopeError as exc:
        return 400, {"status": "bad_request", "reason": str(exc)}
    except UnsupportedMediaError as exc:
        return 415, {"status": "unsupported_media_type", "reason": str(exc)}
    try:
        outcome = await ingestor.handle(event, force=force)
    except TransientError as exc:
        outcome = Outcome(Status.TRANSIENT, event.meta.event_id, str(exc))
    except PermanentError as exc:
        outcome = Outcome(Status.FAILED, event.meta.event_id, str(exc))
    body = outcome.summary()
    errors = [u.error for u in outcome.units if u.error]
    if errors and "reason" not in body:
        body["reason"] = errors[0]  # in-process we can say why a unit failed; HTTP answers don't
    return HTTP_STATUS[outcome.status], body


def dry_run(pipelines: PipelineSet, requests: list[RecordedRequest]) -> list[Result]:
    """Decode each request and say what the service would do with it; touch nothing."""
    return [Result(r.source, 0, _plan(pipelines, r)) for r in requests]


def _plan(pipelines: PipelineSet, request: RecordedRequest) -> dict[str, Any]:
    try:
        event = decode(request.headers, request.body)
    except (EnvelopeError, UnsupportedMediaError) as exc:
        return {"status": "bad_request", "reason": str(exc)}
    body: dict[str, Any] = {"event_id": event.meta.event_id, "shape": event.meta.shape}
    if isinstance(event, Ignored):
        return {**body, "status": "would-ignore", "reason": event.reason}
    if isinstance(event, SweepRequested):
        pipeline = pipelines.get(event.pipeline)
        if pipeline is None:
            return {
                **body,
                "status": "would-ignore",
                "reason": f"unknown pipeline {event.pipeline}",
            }
        where = f"gs://{pipeline.bucket}/{event.prefix or pipeline.prefix_for(event.date)}"
        return {**body, "status": "would-sweep", "reason": f"list {where}"}
    assert isinstance(event, ObjectFinalized)
    ref = event.object.ref
    matching = pipelines.matching(ref.bucket, ref.name)
    if not matching or ref.generation is None:
        return {**body, "status": "would-ignore", "reason": f"no pipeline matches {ref.uri}"}
    units = [str(UnitKey(p.name, ref.bucket, ref.name, ref.generation)) for p in matching]
    return {**body, "status": "would-run", "reason": ", ".join(units)}
