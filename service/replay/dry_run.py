"""``--dry-run``: what the service would do with each request, from the use case's own plan."""

from __future__ import annotations

from typing import Any

from service.answers import Refusal
from service.pipeline.definition import PipelineSet
from service.plans import plan
from service.recording import RecordedRequest, event_of
from service.replay.delivery import Result


def dry_run(pipelines: PipelineSet, requests: list[RecordedRequest]) -> list[Result]:
    """Decode each request and say what would run; touch nothing."""
    return [Result(r.source, 0, planned(pipelines, r)) for r in requests]


def planned(pipelines: PipelineSet, request: RecordedRequest) -> dict[str, Any]:
    event = event_of(request)
    if isinstance(event, str):
        return {"status": Refusal.BAD_REQUEST.value, "reason": event}
    found = plan(pipelines, event)
    return {
        "event_id": event.meta.event_id,
        "shape": event.meta.shape,
        "status": found.verdict.value,
        "reason": found.reason,
    }
