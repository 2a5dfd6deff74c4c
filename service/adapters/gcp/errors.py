"""Google API errors translated into the project's Transient / Permanent errors."""

from __future__ import annotations

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


def translate(exc: BaseException, what: str) -> IngestError:
    if isinstance(exc, gexc.NotFound):
        return NotFoundError(f"{what}: not found")
    if isinstance(exc, TRANSIENT):
        return TransientError(f"{what}: {type(exc).__name__}: {_short(exc)}")
    if isinstance(exc, gexc.Forbidden) and "rateLimitExceeded" in str(exc):
        return TransientError(f"{what}: rate limited")
    if isinstance(exc, gexc.GoogleAPIError):
        return PermanentError(f"{what}: {type(exc).__name__}: {_short(exc)}")
    if _is_transport_error(exc):
        return TransientError(f"{what}: {type(exc).__name__}: {_short(exc)}")
    return PermanentError(f"{what}: {type(exc).__name__}: {_short(exc)}")


def _is_transport_error(exc: BaseException) -> bool:
    """requests/urllib3/google-auth transport failures: the endpoint could not be reached."""
    module = type(exc).__module__
    return module.startswith(("requests", "urllib3", "google.auth")) or isinstance(exc, OSError)


def _short(exc: BaseException, limit: int = 300) -> str:
    text = str(exc).replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "..."
