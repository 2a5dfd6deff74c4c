"""Google API errors translated into the project's Transient / Permanent errors."""

from __future__ import annotations

from typing import Any

from google.api_core import exceptions as gexc

from service.errors import IngestError, NotFoundError, PermanentError, TransientError

# API errors worth retrying: the backend was unavailable, overloaded or too slow.
TRANSIENT = (
    gexc.ServiceUnavailable,
    gexc.TooManyRequests,
    gexc.InternalServerError,
    gexc.BadGateway,
    gexc.GatewayTimeout,
    gexc.DeadlineExceeded,
    gexc.Aborted,
    gexc.RetryError,
    gexc.Unknown,
    ConnectionError,
    TimeoutError,
)
# BigQuery error reasons that say "try again later", whatever HTTP status carries them:
# quotas and rate limits (403/429), backend faults, a table busy with another operation.
TRANSIENT_REASONS = frozenset(
    {
        "backendError",
        "internalError",
        "jobBackendError",
        "jobInternalError",
        "rateLimitExceeded",
        "jobRateLimitExceeded",
        "quotaExceeded",
        "resourceInUse",
        "tableUnavailable",
    }
)

# Message fragments of a write that lost a race with a concurrent one: retrying succeeds.
# BigQuery says "concurrent update"; the local BigQuery emulator (DuckLake) "Failed to commit".
CONFLICT_MESSAGES = ("due to concurrent update", "Failed to commit")


def translate(exc: BaseException, what: str) -> IngestError:
    if isinstance(exc, IngestError):
        return exc
    reasons = error_reasons(exc)
    conflict = isinstance(exc, gexc.BadRequest) and any(m in str(exc) for m in CONFLICT_MESSAGES)
    if conflict or reasons & TRANSIENT_REASONS:
        return TransientError(f"{what}: {', '.join(sorted(reasons))}: {_short(exc)}")
    if isinstance(exc, gexc.NotFound):
        return NotFoundError(f"{what}: not found: {_short(exc)}")
    if isinstance(exc, TRANSIENT):
        return TransientError(f"{what}: {type(exc).__name__}: {_short(exc)}")
    if isinstance(exc, gexc.GoogleAPIError):
        return PermanentError(f"{what}: {type(exc).__name__}: {_short(exc)}")
    if _is_transport_error(exc):
        return TransientError(f"{what}: {type(exc).__name__}: {_short(exc)}")
    return PermanentError(f"{what}: {type(exc).__name__}: {_short(exc)}")


def error_reasons(exc: BaseException) -> set[str]:
    """The ``reason`` of every error item an API exception carries (BigQuery fills them)."""
    items: Any = getattr(exc, "errors", None) or []
    reasons = {str(item.get("reason")) for item in items if isinstance(item, dict)}
    return {r for r in reasons if r and r != "None"}


def _is_transport_error(exc: BaseException) -> bool:
    """requests/urllib3/google-auth transport failures: the endpoint could not be reached."""
    module = type(exc).__module__
    return module.startswith(("requests", "urllib3", "google.auth")) or isinstance(exc, OSError)


def _short(exc: BaseException, limit: int = 300) -> str:
    text = str(exc).replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "..."
