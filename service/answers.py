"""What the service answers, and how a caller reads an answer: one policy for route and commands.

The route builds every answer here (HTTP status, public body, log level, the force header);
replay, re-drive and the commands that judge outcomes ask here which answers are final (a push
subscription acknowledges them), which the platform would redeliver, and which succeeded.
Every body is built from fixed phrases and counts: nothing read from the request is echoed.
Pure: no Quart, no I/O.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from service.plans import Verdict
from service.results import Outcome, Status

# HTTP status for each outcome: 2xx acknowledges, 429 and 503 make the platform redeliver.
HTTP_STATUS = {
    Status.LOADED: 200,
    Status.PUBLISHED: 200,
    Status.DUPLICATE: 200,
    Status.IGNORED: 200,
    Status.FAILED: 200,
    Status.BUSY: 429,
    Status.TRANSIENT: 503,
}
# Log level of the one line each event gets, by outcome.
LOG_LEVEL = {
    Status.LOADED: logging.INFO,
    Status.PUBLISHED: logging.INFO,
    Status.DUPLICATE: logging.INFO,
    Status.IGNORED: logging.INFO,
    Status.FAILED: logging.ERROR,
    Status.BUSY: logging.WARNING,
    Status.TRANSIENT: logging.WARNING,
}
# What the answer says instead of an error's own text (which may name objects or hosts).
PUBLIC_REASON = {
    Status.TRANSIENT: "a backend is unavailable; retry later",
    Status.FAILED: "permanent failure; see the service log",
}
# Asks for a forced re-run of finished units (replay --force); obeyed only with allow_force.
FORCE_HEADER = "X-Ingest-Force"
# The header values that ask for it.
FORCE_VALUES = frozenset({"1", "true"})
FORCE_REFUSED = "forced re-runs are disabled (INGEST_ALLOW_FORCE=false)"


class Refusal(StrEnum):
    """The status names of answers given before an event runs (or instead of any answer)."""

    SHUTTING_DOWN = "shutting_down"
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"
    BAD_REQUEST = "bad_request"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    ERROR = "error"  # no outcome: an HTTP error, or (client side) no usable answer at all


# Outcomes after which nothing is left to do for an event: what a push subscription acknowledges.
FINAL = frozenset(s.value for s in Status if HTTP_STATUS[s] < 300)
# Answers the platform would redeliver later (429, 503): replay sends them again itself.
RETRYABLE = frozenset(
    {*(s.value for s in Status if HTTP_STATUS[s] >= 400), Refusal.SHUTTING_DOWN.value}
)
# Outcomes (and dry-run verdicts) that leave nothing to do: any other is a failure to report.
SUCCEEDED = frozenset(
    {
        Status.LOADED.value,
        Status.PUBLISHED.value,
        Status.DUPLICATE.value,
        Status.IGNORED.value,
        *(v.value for v in Verdict),
    }
)


@dataclass(frozen=True)
class Answer:
    http_status: int
    body: dict[str, Any]  # the JSON object sent back


def of_outcome(outcome: Outcome, *, detailed: bool = False) -> Answer:
    """The answer to an event that ran. ``detailed`` (in-process replay, where the operator is
    the caller) keeps the errors' own text; otherwise fixed phrases stand in for it."""
    body = outcome.summary()
    body.pop("event_id", None)  # logged once; never answered
    if detailed:
        errors = [u.error for u in outcome.units if u.error]
        if errors and "reason" not in body:
            body["reason"] = errors[0]
    elif outcome.status in PUBLIC_REASON:
        body["reason"] = _public_reason(outcome)
    return Answer(HTTP_STATUS[outcome.status], body)


def _public_reason(outcome: Outcome) -> str:
    """A failed unit's stage and category (fixed phrases and counts), else the fixed phrase."""
    if outcome.status is Status.FAILED:
        for unit in outcome.units:
            if unit.status is Status.FAILED and unit.public_reason:
                return unit.public_reason
    return PUBLIC_REASON[outcome.status]


def refused(refusal: Refusal, http_status: int, reason: str) -> Answer:
    return Answer(http_status, {"status": refusal.value, "reason": reason})


def shutting_down() -> Answer:
    return refused(Refusal.SHUTTING_DOWN, 503, PUBLIC_REASON[Status.TRANSIENT])


def auth_refused(http_status: int, reason: str) -> Answer:
    """401 (no valid token) or 403 (a valid token of a caller not allowed)."""
    refusal = Refusal.UNAUTHENTICATED if http_status == 401 else Refusal.FORBIDDEN
    return refused(refusal, http_status, reason)


def auth_unavailable() -> Answer:
    return Answer(
        503, {"status": Status.TRANSIENT.value, "reason": PUBLIC_REASON[Status.TRANSIENT]}
    )


def force_refused() -> Answer:
    return refused(Refusal.FORBIDDEN, 403, FORCE_REFUSED)


def bad_request(reason: str) -> Answer:
    return refused(Refusal.BAD_REQUEST, 400, reason)


def unsupported_media(reason: str) -> Answer:
    return refused(Refusal.UNSUPPORTED_MEDIA_TYPE, 415, reason)


def http_error(http_status: int, name: str) -> Answer:
    return refused(Refusal.ERROR, http_status, name)


def asks_force(headers: Mapping[str, str]) -> bool:
    """Whether a request (its headers with lower-case names) asks for a forced re-run."""
    return headers.get(FORCE_HEADER.lower(), "").strip().lower() in FORCE_VALUES


def is_final(http_status: int, status: str) -> bool:
    """What a push subscription would acknowledge, for an event that needs nothing more.

    A 202 is never final: the Pub/Sub emulator treats it as a nack.
    """
    return 200 <= http_status < 300 and http_status != 202 and status in FINAL


def is_retryable(status: str) -> bool:
    return status in RETRYABLE


def succeeded(status: str, http_status: int = 0) -> bool:
    """An answer (or a dry run's verdict, ``http_status`` 0) that leaves nothing to do."""
    return status in SUCCEEDED and http_status < 400
