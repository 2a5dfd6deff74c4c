"""POST /: decode the delivery, run it, answer with the status the platform understands."""

from __future__ import annotations

import logging
import time

from quart import Blueprint, jsonify, request
from quart.typing import ResponseReturnValue

from service.errors import EnvelopeError, TransientError, UnsupportedMediaError
from service.events import decode
from service.ingest import Outcome, Status
from service.recording import record_request
from service.runtime import runtime

log = logging.getLogger(__name__)
blueprint = Blueprint("events", __name__)

# HTTP status for each outcome: 2xx acknowledges, 429 and 503 make the platform redeliver.
HTTP_STATUS = {
    Status.LOADED: 200,
    Status.DUPLICATE: 200,
    Status.IGNORED: 200,
    Status.FAILED: 200,
    Status.BUSY: 429,
    Status.TRANSIENT: 503,
}


@blueprint.post("/")
async def receive() -> ResponseReturnValue:
    rt = runtime()
    started = time.perf_counter()
    raw = await request.get_data(cache=False, as_text=False)
    body = raw.encode() if isinstance(raw, str) else raw
    headers = dict(request.headers)
    try:
        event = decode(headers, body)
    except EnvelopeError as exc:
        log.warning("refused a request: %s", exc)
        return jsonify({"status": "bad_request", "reason": str(exc)}), 400
    except UnsupportedMediaError as exc:
        log.warning("refused a request: %s", exc)
        return jsonify({"status": "unsupported_media_type", "reason": str(exc)}), 415
    if rt.settings.record_dir is not None:
        record_request(rt.settings.record_dir, event.meta.event_id, headers, body)
    try:
        outcome = await rt.ingestor.handle(event)
    except TransientError as exc:
        outcome = Outcome(Status.TRANSIENT, event.meta.event_id, str(exc))
    elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
    log.info(
        "event %s (%s, %s): %s in %s ms",
        event.meta.event_id,
        event.meta.shape,
        event.meta.event_type,
        outcome.status.value,
        elapsed_ms,
        extra={"event_id": event.meta.event_id, "outcome": outcome.status.value},
    )
    return jsonify(outcome.summary()), HTTP_STATUS[outcome.status]
