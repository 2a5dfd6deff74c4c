"""service/answers.py: one answer policy, read the same by the route, replay and re-drive."""

from __future__ import annotations

import pytest

from service import answers
from service.results import Outcome, Status, UnitOutcome

FAILED = Outcome(
    Status.FAILED,
    "e-1",
    units=(UnitOutcome("orders:gs://b/secret.csv#1", Status.FAILED, error="gs://b/secret.csv"),),
)


def test_the_client_side_sets_follow_the_http_table() -> None:
    assert {"loaded", "published", "duplicate", "ignored", "failed"} == answers.FINAL
    assert {"busy", "transient", "shutting_down"} == answers.RETRYABLE
    assert {
        "loaded",
        "published",
        "duplicate",
        "ignored",
        "would-run",
        "would-sweep",
        "would-ignore",
    } == answers.SUCCEEDED


def test_a_public_answer_says_neither_the_event_id_nor_the_error_text() -> None:
    answer = answers.of_outcome(FAILED)
    assert answer.http_status == 200
    assert answer.body == {
        "status": "failed",
        "reason": answers.PUBLIC_REASON[Status.FAILED],
        "units": {"failed": 1},
        "rows_loaded": 0,
        "rows_quarantined": 0,
        "rows_rejected": 0,
        "rows_already_loaded": 0,
    }


def test_a_failed_unit_answers_its_stage_and_category_not_its_error() -> None:
    unit = UnitOutcome(
        "u",
        Status.FAILED,
        rows_quarantined=1003,
        error="1003 of 2000 rows bad; most frequent: id: 'secret' is not a valid INTEGER",
        stage="validate",
        rows_rejected=997,
        public_reason="validate: 1,003 of 2,000 rows bad, threshold 25%",
    )
    answer = answers.of_outcome(Outcome(Status.FAILED, "e", units=(unit,)))
    assert answer.body["reason"] == "validate: 1,003 of 2,000 rows bad, threshold 25%"
    assert "secret" not in str(answer.body)
    assert (answer.body["rows_quarantined"], answer.body["rows_rejected"]) == (1003, 997)


def test_a_detailed_answer_keeps_the_first_error_for_the_operator() -> None:
    body = answers.of_outcome(FAILED, detailed=True).body
    assert "event_id" not in body
    assert body["reason"] == "gs://b/secret.csv"


@pytest.mark.parametrize(
    ("http_status", "status", "final"),
    [
        (200, "loaded", True),
        (200, "failed", True),
        (202, "loaded", False),  # the Pub/Sub emulator takes a 202 for a nack
        (429, "busy", False),
        (400, "bad_request", False),
        (200, "error", False),
    ],
)
def test_what_is_final(http_status: int, status: str, final: bool) -> None:
    assert answers.is_final(http_status, status) is final


def test_refusals_have_their_status_and_name() -> None:
    assert answers.auth_refused(401, "no token").body["status"] == "unauthenticated"
    assert answers.auth_refused(403, "not you").body["status"] == "forbidden"
    assert answers.force_refused().http_status == 403
    assert answers.shutting_down().http_status == 503
    assert answers.is_retryable(answers.shutting_down().body["status"])
    assert not answers.succeeded("loaded", 403)


@pytest.mark.parametrize(("value", "forced"), [("1", True), (" TRUE ", True), ("yes", False)])
def test_the_force_header(value: str, forced: bool) -> None:
    assert answers.asks_force({answers.FORCE_HEADER.lower(): value}) is forced
    assert not answers.asks_force({})
