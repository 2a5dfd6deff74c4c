"""GET /metrics: the service's OpenTelemetry metrics in Prometheus's text format.

Readable by whoever may read the status page (the same token check when one is configured).
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST
from quart import Blueprint, Response, jsonify
from quart.typing import ResponseReturnValue

from service.routes.status import authenticate
from service.runtime import runtime

blueprint = Blueprint("metrics", __name__)


@blueprint.get("/metrics")
async def metrics() -> ResponseReturnValue:
    refused = await authenticate()
    if refused is not None:
        return jsonify({"status": refused.status, "reason": refused.reason}), refused.code
    found = runtime().metrics
    if found is None:
        return jsonify({"status": "unavailable", "reason": "not serving"}), 503
    response = Response(found.prometheus_text(), content_type=CONTENT_TYPE_LATEST)
    response.headers["Cache-Control"] = "no-store"
    return response
