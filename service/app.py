"""The HTTP edge: the Quart app factory. Clients open and close with the serving lifecycle."""

from __future__ import annotations

from quart import Quart, jsonify, request
from quart.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from service.auth import TokenVerifier
from service.logs import bind_trace, configure_logging, trace_from_headers
from service.routes import events, health, status
from service.runtime import Runtime
from service.settings import Settings


def create_app(settings: Settings | None = None) -> Quart:
    settings = settings or Settings.from_env()
    configure_logging(settings)
    app = Quart("service")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    runtime = Runtime(settings)
    app.extensions["runtime"] = runtime
    app.extensions["auth"] = TokenVerifier.from_settings(settings)

    @app.before_serving
    async def open_backends() -> None:
        await runtime.open()

    @app.after_serving
    async def close_backends() -> None:
        await runtime.close()

    @app.before_request
    async def bind_request_trace() -> None:
        # Every line logged while this request is handled carries its trace (Cloud Logging).
        headers = request.headers
        bind_trace(
            trace_from_headers(headers.get("traceparent"), headers.get("X-Cloud-Trace-Context"))
        )

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> ResponseReturnValue:
        code = error.code or 500
        return jsonify({"status": "error", "reason": error.name}), code

    app.register_blueprint(events.blueprint)
    app.register_blueprint(health.blueprint)
    app.register_blueprint(status.blueprint)
    return app
