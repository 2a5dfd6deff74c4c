"""A stand-in for Cloud Run's front end, for the chaos run.

On Cloud Run, a push never meets a closed port: while an instance restarts, Google's front end
answers 503 (or 429) and Pub/Sub retries. The Pub/Sub emulator (0.8.20), by contrast, never
redelivers a message whose push met "connection refused" (measured: 0 of 10 messages came back
within 60 s of the endpoint reopening, with 10 s or 60 s ack deadlines). This proxy keeps the
port open for the emulator and answers 503 when the service behind it is down, as production
does.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator

import httpx
from hypercorn.asyncio import serve
from hypercorn.config import Config
from quart import Quart, Response, request

# Headers the proxy sets itself (hop-by-hop or recomputed by the HTTP client).
DROPPED = frozenset({"host", "content-length", "connection", "transfer-encoding"})
FORWARD_TIMEOUT_S = 60.0


def front_end(*backend_ports: int) -> Quart:
    """Forward each request to the next backend in turn (Cloud Run spreads requests over its
    instances much like this when none is busier than another)."""
    app = Quart(f"front-{backend_ports[0]}")
    client = httpx.AsyncClient(timeout=FORWARD_TIMEOUT_S)
    backends = itertools.cycle([f"http://127.0.0.1:{port}/" for port in backend_ports])

    @app.post("/")
    async def forward() -> Response:
        body = await request.get_data(as_text=False)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in DROPPED}
        try:
            answer = await client.post(next(backends), content=body, headers=headers)
        except httpx.HTTPError:
            return Response(b'{"status":"unavailable"}', 503, content_type="application/json")
        return Response(answer.content, answer.status_code, content_type="application/json")

    @app.after_serving
    async def close() -> None:
        await client.aclose()

    return app


@contextlib.asynccontextmanager
async def running_front_end(port: int, *backend_ports: int) -> AsyncIterator[None]:
    """Serve the proxy on ``port`` for the duration of the block."""
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.errorlog = None
    stop = asyncio.Event()
    task = asyncio.create_task(serve(front_end(*backend_ports), config, shutdown_trigger=stop.wait))
    try:
        for _ in range(100):  # bounded: the socket is usually open within a few ms
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            await asyncio.sleep(0.05)
        yield
    finally:
        stop.set()
        await task
