"""bench/scale.py's reading of the warehouse: a count it could not make is never a count.

A stub of BigQuery's jobs.query on 127.0.0.1 answers what the emulator did when its database
had failed (400), an unfinished or paged answer, or the rows.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any, cast

import pytest

from bench import scale
from tests.emulators import Emulator

ROWS = {"rows": [{"f": [{"v": "gs://scale-landing/in/00001.csv"}, {"v": "7"}, {"v": "3"}]}]}


@pytest.fixture
def answers(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[list[Any], Emulator]]:
    """(the answers to give, in order, as (status, body); a stand-in for the emulator)."""
    queue: list[Any] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            status, body = queue.pop(0)
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setattr(scale, "COUNT_PAUSE_S", 0.0)
    stand_in = SimpleNamespace(url=f"http://127.0.0.1:{server.server_address[1]}")
    try:
        yield queue, cast(Emulator, stand_in)
    finally:
        server.shutdown()
        server.server_close()


def test_rows_are_counted_by_file_and_generation(answers: tuple[list[Any], Emulator]) -> None:
    queue, emulator = answers
    queue.append((200, {"jobComplete": True, "totalRows": "1", **ROWS}))
    assert scale.warehouse_counts(emulator) == {("gs://scale-landing/in/00001.csv", 7): 3}


def test_a_failed_database_is_not_counted_as_every_file_lost(
    answers: tuple[list[Any], Emulator],
) -> None:
    queue, emulator = answers
    invalidated = {"error": {"code": 400, "message": "database has been invalidated"}}
    queue.extend([(400, invalidated)] * scale.COUNT_ATTEMPTS)
    why = scale.warehouse_counts(emulator)
    assert isinstance(why, str)
    assert "answered 400" in why


@pytest.mark.parametrize(
    "body",
    [
        {"jobComplete": False},
        {"jobComplete": True, "totalRows": "1", "pageToken": "next", **ROWS},
        {"jobComplete": True, "totalRows": "2", **ROWS},
    ],
)
def test_an_unfinished_or_partial_answer_is_not_a_count(
    answers: tuple[list[Any], Emulator], body: dict[str, Any]
) -> None:
    queue, emulator = answers
    queue.extend([(200, body)] * scale.COUNT_ATTEMPTS)
    assert isinstance(scale.warehouse_counts(emulator), str)


def test_a_failed_try_is_tried_again(answers: tuple[list[Any], Emulator]) -> None:
    queue, emulator = answers
    queue.extend([(503, {}), (200, {"jobComplete": True, "totalRows": "1", **ROWS})])
    assert scale.warehouse_counts(emulator) == {("gs://scale-landing/in/00001.csv", 7): 3}
