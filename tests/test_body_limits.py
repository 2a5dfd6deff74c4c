"""Bodies that never finish arriving: answered and freed, by the middleware and by a real server."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from service.body_limits import BodyLimits
from tests.conftest import EXAMPLES
from tests.serving import READY_SECONDS, Server, start_ingest_serve

# Bound on any wait in these tests; the limits under test are far shorter.
WAIT_SECONDS = 30.0


class Client:
    """One request's ASGI side: body messages it will deliver, and what it was sent back."""

    def __init__(self, *chunks: bytes, finished: bool) -> None:
        # What the client sends; when it is empty, the client is silent.
        self.messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        for chunk in chunks:
            self.messages.put_nowait({"type": "http.request", "body": chunk, "more_body": True})
        if finished:
            self.finish()
        self.sent: list[dict[str, Any]] = []
        self.waiting = asyncio.Event()  # set once the server waits for more than was sent

    def finish(self) -> None:
        self.messages.put_nowait({"type": "http.request", "body": b"", "more_body": False})

    async def receive(self) -> dict[str, Any]:
        if self.messages.empty():
            self.waiting.set()
        return await self.messages.get()

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int | None:
        starts = [m["status"] for m in self.sent if m["type"] == "http.response.start"]
        assert len(starts) <= 1, starts
        return starts[0] if starts else None


class ReadingApp:
    """An app that reads the whole body (until it ends or the client leaves), then answers 200."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.disconnected = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            self.received.append(message)
            if message["type"] == "http.disconnect":
                self.disconnected = True
                return
            if not message.get("more_body", False):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok", "more_body": False})


SCOPE = {"type": "http", "method": "POST", "path": "/", "headers": []}


async def call(limits: BodyLimits, client: Client) -> None:
    await asyncio.wait_for(limits(SCOPE, client.receive, client.send), WAIT_SECONDS)  # type: ignore[arg-type]


async def test_a_body_that_arrives_passes_untouched() -> None:
    app = ReadingApp()
    limits = BodyLimits(app, seconds=WAIT_SECONDS, budget=100)
    client = Client(b"abc", b"def", finished=True)
    await call(limits, client)
    assert client.status == 200
    assert b"".join(m["body"] for m in app.received) == b"abcdef"
    assert limits.pending == 0


async def test_a_body_never_finished_is_answered_408_and_the_app_told_the_client_left() -> None:
    app = ReadingApp()
    limits = BodyLimits(app, seconds=0.05, budget=100)
    client = Client(b"abc", finished=False)
    await call(limits, client)
    assert client.status == 408
    assert json.loads(client.sent[-1]["body"])["status"] == "request_timeout"
    assert (b"connection", b"close") in client.sent[0]["headers"]
    assert app.disconnected
    assert limits.pending == 0  # the 3 bytes it held no longer count


async def test_bodies_arriving_together_cannot_hold_more_than_the_budget() -> None:
    app = ReadingApp()
    limits = BodyLimits(app, seconds=WAIT_SECONDS, budget=10)
    slow = Client(b"x" * 6, finished=False)
    holding = asyncio.create_task(call(limits, slow))
    await asyncio.wait_for(slow.waiting.wait(), WAIT_SECONDS)
    second = Client(b"y" * 6, finished=True)
    await call(limits, second)  # 6 + 6 > 10
    assert second.status == 503
    assert json.loads(second.sent[-1]["body"])["status"] == "busy"
    assert limits.pending == 6  # only the first body's bytes are still held
    slow.finish()  # the first one ends after all: the app answers it
    await holding
    assert (slow.status, limits.pending) == (200, 0)


async def test_an_app_that_answered_before_the_body_ended_is_not_answered_twice() -> None:
    async def early(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 401, "headers": []})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        assert (await receive())["type"] == "http.request"
        assert (await receive())["type"] == "http.disconnect"

    limits = BodyLimits(early, seconds=0.05, budget=100)
    client = Client(b"abc", finished=False)
    await call(limits, client)
    assert client.status == 401
    assert limits.pending == 0


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "INGEST_HOST": "127.0.0.1",
        "INGEST_DATA_DIR": str(tmp_path / "data"),
        "INGEST_PIPELINES": str(EXAMPLES / "pipelines.toml"),
        "INGEST_BODY_TIMEOUT_SECONDS": "1",
        "INGEST_LOG_FORMAT": "json",
    }
    served = start_ingest_serve(env, tmp_path, tmp_path / "server.log")
    try:
        yield served
    finally:
        served.kill()


def test_a_real_server_drops_a_half_sent_body_within_the_bound(server: Server) -> None:
    head = (
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100000\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT_SECONDS) as sock:
        sock.sendall(head + b'{"message": {"data": "')  # and then nothing more
        started = time.monotonic()
        answer = b""
        deadline = started + READY_SECONDS
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)  # raises TimeoutError past WAIT_SECONDS: the test fails
            if not chunk:
                break  # the server closed the connection
            answer += chunk
        print(f"half-sent body answered and closed after {time.monotonic() - started:.2f} s")
    assert answer.startswith(b"HTTP/1.1 408"), (answer, server.output())
    assert b"request_timeout" in answer
    assert "its body did not arrive in 1s" in server.output()
