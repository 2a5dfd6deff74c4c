"""service/replay/rounds.py: what the platform would redeliver is sent again, a few rounds."""

from __future__ import annotations

import pytest

from service.recording import RecordedRequest
from service.replay import rounds
from service.replay.delivery import Result

REQUESTS = [RecordedRequest({}, b"", f"r{n}") for n in range(3)]


def test_only_retryable_answers_are_sent_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("time.sleep", lambda seconds: None)
    # r0 loads at once; r1 is busy once; r2 is refused (final: never sent again).
    answers = {"r0": ["loaded"], "r1": ["busy", "loaded"], "r2": ["bad_request"]}
    sent: list[list[str]] = []
    announced: list[tuple[int, float]] = []

    def run(batch: list[RecordedRequest]) -> list[Result]:
        sent.append([r.source for r in batch])
        return [Result(r.source, 200, {"status": answers[r.source].pop(0)}) for r in batch]

    results = rounds.with_retries(run, REQUESTS, 3, lambda n, d: announced.append((n, d)))
    assert [r.status for r in results] == ["loaded", "loaded", "bad_request"]
    assert sent == [["r0", "r1", "r2"], ["r1"]]
    assert announced == [(1, rounds.RETRY_DELAY_SECONDS)]


def test_rounds_stop_after_the_last_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    delays: list[float] = []
    monkeypatch.setattr("time.sleep", delays.append)

    def run(batch: list[RecordedRequest]) -> list[Result]:
        return [Result(r.source, 503, {"status": "transient"}) for r in batch]

    results = rounds.with_retries(run, REQUESTS, 2, lambda n, d: None)
    assert {r.status for r in results} == {"transient"}
    assert delays == [1.0, 2.0]
