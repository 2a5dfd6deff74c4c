"""The HTTP edge: the Quart app factory. Clients open and close with the serving lifecycle."""

from __future__ import annotations

from typing import Any

import orjson
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope
from quart import Quart, jsonify
from quart.json.provider import DefaultJSONProvider
from quart.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from service import answers
from service.auth import TokenVerifier
from service.body_limits import ASGIApp, BodyLimits
from service.logs import bind_trace, configure_logging, trace_from_raw_headers
from service.routes import events, health, metrics, status
from service.runtime import Runtime
from service.settings import Settings


def create_app(settings: Settings | None = None, *, detailed_answers: bool = False) -> Quart:
    """The app; ``detailed_answers`` is for in-process replay only (the operator is the caller)."""
    settings = settings or Settings.from_env()
    configure_logging(settings)
    app = Quart("service")
    app.config[events.DETAILED_ANSWERS] = detailed_answers
    app.json = FastJSONProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    # Quart enforces these by running each body read and each answer in a task of its own,
    # two extra tasks and timers per request. Cloud Run's front end buffers the body and
    # bounds every request by the service's request timeout, so they add cost, not safety.
    app.config["BODY_TIMEOUT"] = None
    app.config["RESPONSE_TIMEOUT"] = None
    runtime = Runtime(settings)
    app.extensions["runtime"] = runtime
    app.extensions["auth"] = TokenVerifier.from_settings(settings)
    app.extensions["status_auth"] = status.verifier_for(settings, app.extensions["auth"])

    @app.before_serving
    async def open_backends() -> None:
        await runtime.open()

    @app.after_serving
    async def close_backends() -> None:
        await runtime.close()

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> ResponseReturnValue:
        answer = answers.http_error(error.code or 500, error.name)
        return jsonify(answer.body), answer.http_status

    events.register(app)
    app.register_blueprint(health.blueprint)
    app.register_blueprint(status.blueprint)
    app.register_blueprint(metrics.blueprint)
    limited = BodyLimits(
        app.asgi_app, settings.body_timeout_seconds, settings.max_arriving_body_bytes
    )
    # Every line logged while a request is handled carries its trace (Cloud Logging).
    app.asgi_app = TraceBinding(limited)  # type: ignore[method-assign]
    return app


class FastJSONProvider(DefaultJSONProvider):
    """Quart's JSON (sorted keys, its ``default`` for dates and dataclasses) through orjson.

    Every answer is JSON; the stdlib encoder cost more than the rest of answering an event.
    Output differs only in spacing and in leaving non-ASCII text unescaped.
    """

    OPTIONS = (
        orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
    )

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        if set(kwargs) <= {"separators"}:  # compact, as answers are outside debug mode
            try:
                return orjson.dumps(obj, default=self.default, option=self.OPTIONS).decode()
            except TypeError:
                pass  # a lone surrogate, a key that is not a string: the stdlib handles those
        return super().dumps(obj, **kwargs)

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return orjson.loads(s) if not kwargs else super().loads(s, **kwargs)


class TraceBinding:
    """ASGI middleware: binds the request's trace from the raw header list, before Quart runs.

    Reading the raw list costs one pass; werkzeug's Headers scans every header per lookup and
    raises (and catches) an exception inside for each absent one.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "http":
            bind_trace(trace_from_raw_headers(scope["headers"]))
        await self.app(scope, receive, send)
