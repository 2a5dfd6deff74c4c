"""Liveness and readiness: ``/health`` and ``/ready``.

Cloud Run reserves some paths ending in ``z`` (https://cloud.google.com/run/docs/known-issues),
so ``/healthz`` and ``/readyz`` may never reach the container there; they stay for local use.
"""

from __future__ import annotations

import asyncio

from quart import Blueprint, jsonify
from quart.typing import ResponseReturnValue

from service.errors import IngestError
from service.ports import IdempotencyStore, ObjectStore, Warehouse
from service.runtime import runtime

blueprint = Blueprint("health", __name__)

READY_TIMEOUT_SECONDS = 5.0


@blueprint.get("/health")
@blueprint.get("/healthz")
async def health() -> ResponseReturnValue:
    return jsonify({"status": "ok"})


@blueprint.get("/ready")
@blueprint.get("/readyz")
async def ready() -> ResponseReturnValue:
    backends = runtime().backends
    checks: dict[str, ObjectStore | Warehouse | IdempotencyStore] = {
        "object_store": backends.store,
        "warehouse": backends.warehouse,
        "ledger": backends.ledger_store,
    }
    results: dict[str, str] = {}
    for name, backend in checks.items():
        try:
            await asyncio.wait_for(backend.ping(), READY_TIMEOUT_SECONDS)
            results[name] = "ok"
        except (IngestError, TimeoutError) as exc:
            results[name] = f"unavailable: {type(exc).__name__}"
    ready = all(v == "ok" for v in results.values())
    return jsonify({"status": "ready" if ready else "unavailable", "checks": results}), (
        200 if ready else 503
    )
