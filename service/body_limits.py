"""ASGI middleware: bounds on request bodies still arriving, in time and in memory.

A request's body must arrive in full within ``seconds`` of the request starting, or it is
answered 408 and its connection closed; all bodies still arriving hold at most ``budget`` bytes
together, or the request that would pass it is answered 503 (retry later) and closed.

Hypercorn's ``read_timeout`` cannot do the first: it bounds every silent wait on a connection,
including a client waiting for its answer, and Quart cancels a request whose connection closes,
so it would cut units that run longer than it. Quart's ``BODY_TIMEOUT`` can, but runs each body
read in a task of its own. Here the cost is a timer per body message until the body is complete
(two for most requests: the body, then its end), and nothing after.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import orjson
from hypercorn.typing import (
    ASGIReceiveCallable,
    ASGIReceiveEvent,
    ASGISendCallable,
    ASGISendEvent,
    Scope,
)

log = logging.getLogger(__name__)

ASGIApp = Callable[[Scope, ASGIReceiveCallable, ASGISendCallable], Awaitable[None]]
# What a refused request is answered, by the limit it ran into: (HTTP status, body).
TOO_SLOW = (408, {"status": "request_timeout", "reason": "the request body did not arrive in time"})
TOO_MANY = (503, {"status": "busy", "reason": "too many request bodies arriving; retry later"})


class BodyLimits:
    def __init__(self, app: ASGIApp, seconds: float, budget: int) -> None:
        self.app = app
        self.seconds = seconds
        self.budget = budget
        # Bytes held by bodies still arriving, all requests together.
        self.pending = 0

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = ArrivingBody(self, receive, send)
        try:
            await self.app(scope, body.receive, body.send)
        finally:
            body.finish()


class ArrivingBody:
    """One request's body while it arrives: its deadline, and the bytes it holds so far."""

    def __init__(self, limits: BodyLimits, receive: ASGIReceiveCallable, send: ASGISendCallable):
        self.limits = limits
        self._receive = receive
        self._send = send
        self.deadline = asyncio.get_running_loop().time() + limits.seconds
        self.held = 0
        self.complete = False
        self.answered = False
        self.refused = False

    async def receive(self) -> ASGIReceiveEvent:
        if self.refused:
            return {"type": "http.disconnect"}
        if self.complete:
            return await self._receive()
        try:
            async with asyncio.timeout_at(self.deadline):
                message = await self._receive()
        except TimeoutError:
            log.warning("refused a request: its body did not arrive in %ss", self.limits.seconds)
            return await self.refuse(TOO_SLOW)
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.finish()
            return message
        size = len(message.get("body", b""))
        self.held += size
        self.limits.pending += size
        if self.limits.pending > self.limits.budget:
            log.warning(
                "refused a request: bodies still arriving would hold over %d bytes",
                self.limits.budget,
            )
            return await self.refuse(TOO_MANY)
        return message

    async def send(self, message: ASGISendEvent) -> None:
        self.answered = True
        await self._send(message)

    async def refuse(self, answer: tuple[int, dict[str, str]]) -> ASGIReceiveEvent:
        """Answer (unless the app has begun to) and tell the app the client has gone."""
        self.finish()
        self.refused = True
        if not self.answered:
            self.answered = True
            status, document = answer
            headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
            await self._send({"type": "http.response.start", "status": status, "headers": headers})
            await self._send(
                {"type": "http.response.body", "body": orjson.dumps(document), "more_body": False}
            )
        return {"type": "http.disconnect"}

    def finish(self) -> None:
        """The body is complete, refused or abandoned: what it held no longer counts."""
        self.complete = True
        self.limits.pending -= self.held
        self.held = 0
