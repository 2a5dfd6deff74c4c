"""POST /: authenticate, decode the delivery, run it, answer with a status the platform obeys.

Every answer is a small JSON object built from fixed phrases and counts: nothing read from the
request (ids, names, header values) is echoed back; the event id goes to the log, once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from quart import Quart, current_app, jsonify, request
from quart.typing import ResponseReturnValue

from service import answers
from service.answers import Answer
from service.auth import AuthError, TokenVerifier
from service.errors import EnvelopeError, PermanentError, TransientError, UnsupportedMediaError
from service.events import decode
from service.ingest import Ingestor
from service.logs import bind_labels
from service.models import Event
from service.recording import record_request
from service.results import Outcome, Status
from service.runtime import runtime

log = logging.getLogger(__name__)

# App config key: answer with the errors' own text (in-process replay; see answers.of_outcome).
DETAILED_ANSWERS = "INGEST_DETAILED_ANSWERS"


def register(app: Quart) -> None:
    # On the app, not a blueprint: Quart walks a blueprint's hooks on every request it routes.
    app.add_url_rule("/", "receive", receive, methods=["POST"])


async def receive() -> ResponseReturnValue:
    started = time.perf_counter()
    rt = runtime()
    if rt.draining:
        # Shutting down: 503 makes the platform redeliver the event (to another instance).
        log.warning("refused a request: shutting down")
        return _send(answers.shutting_down())
    # One plain dict from the ASGI header list: werkzeug's Headers scans every header
    # per lookup.
    headers = {
        k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.scope["headers"]
    }
    verifier: TokenVerifier | None = current_app.extensions.get("auth")
    if verifier is not None:
        try:
            await verifier.verify(headers.get("authorization"))
        except AuthError as exc:
            log.warning("refused a request: %s", exc.reason)
            return _send(answers.auth_refused(exc.status, exc.reason))
        except TransientError as exc:
            log.error("cannot authenticate requests: %s", exc)
            return _send(answers.auth_unavailable())
    force = answers.asks_force(headers)
    if force and not rt.settings.allow_force:
        log.warning("refused a forced re-run: INGEST_ALLOW_FORCE is off")
        return _send(answers.force_refused())
    # Quart stops reading past MAX_CONTENT_LENGTH, whatever Content-Length said: 413.
    raw = await request.get_data(cache=False, as_text=False)
    body = raw.encode() if isinstance(raw, str) else raw
    try:
        event = decode(headers, body)
    except EnvelopeError as exc:
        log.warning("refused a request: %s", exc)
        return _send(answers.bad_request(str(exc)))
    except UnsupportedMediaError as exc:
        log.warning("refused a request: %s", exc)
        return _send(answers.unsupported_media(str(exc)))
    bind_labels(event_id=event.meta.event_id)  # on every line logged for this request
    if rt.settings.record_dir is not None:
        await _record(
            rt.settings.record_dir, rt.settings.record_max_body_bytes, event, headers, body
        )
    outcome = await _handle(rt.ingestor, event, force=force)
    _log_once(event, outcome, started)
    detailed = bool(current_app.config.get(DETAILED_ANSWERS))
    return _send(answers.of_outcome(outcome, detailed=detailed))


def _send(answer: Answer) -> ResponseReturnValue:
    return jsonify(answer.body), answer.http_status


async def _handle(ingestor: Ingestor, event: Event, *, force: bool = False) -> Outcome:
    try:
        return await ingestor.handle(event, force=force)
    except TransientError as exc:
        return Outcome(Status.TRANSIENT, event.meta.event_id, str(exc))
    except PermanentError as exc:
        return Outcome(Status.FAILED, event.meta.event_id, str(exc))


async def _record(
    directory: Path, cap: int, event: Event, headers: dict[str, str], body: bytes
) -> None:
    """Keep a replayable copy (INGEST_RECORD_DIR); a failure here never fails intake."""
    try:
        await asyncio.to_thread(record_request, directory, event.meta.event_id, headers, body, cap)
    except OSError as exc:
        log.error("could not record event %s: %s", event.meta.event_id, exc)


def _log_once(event: Event, outcome: Outcome, started: float) -> None:
    elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
    log.log(
        answers.LOG_LEVEL[outcome.status],
        "event %s (%s, %s): %s%s in %s ms",
        event.meta.event_id,
        event.meta.shape,
        event.meta.event_type,
        outcome.status.value,
        f" ({outcome.reason})" if outcome.reason else "",
        elapsed_ms,
        extra={"event_id": event.meta.event_id, "outcome": outcome.status.value},
    )
