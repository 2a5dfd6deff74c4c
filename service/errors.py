"""The project's exception tree: one root, and Transient vs Permanent decides retry vs ack."""

from __future__ import annotations

from service.models import UnitResult


class IngestError(Exception):
    """Root of every error this service raises on purpose."""


class TransientError(IngestError):
    """Worth retrying: a backend was unavailable, slow or rate-limited."""


class PermanentError(IngestError):
    """Retrying cannot help: bad data, bad configuration, a missing object."""


class ConfigError(PermanentError):
    """Settings or the pipelines file are invalid; raised at start-up."""


class RowsRejected(PermanentError):
    """The file is rejected whole: too many bad rows, or a fault in the file or its table.

    ``result`` holds the counts the ledger records; ``public`` says which stage and what kind
    of fault in fixed phrases and counts (it may be answered over HTTP; the message may not).
    """

    def __init__(self, message: str, result: UnitResult, public: str | None = None) -> None:
        super().__init__(message)
        self.result = result
        self.public = public


class NotFoundError(PermanentError):
    """The object (or the generation the event named) does not exist."""


class LeaseLostError(TransientError):
    """Another worker took over this unit; our late result must not be recorded."""


class ConnectionLost(TransientError):
    """A Write API connection dropped: appends not yet answered may or may not have applied."""


class StageError(IngestError):
    """A failure inside one pipeline stage, naming the stage and the unit.

    It wraps the Transient or Permanent cause so the runner can tell which it is.
    """

    def __init__(self, stage: str, unit: str, cause: IngestError) -> None:
        super().__init__(f"stage {stage} failed for unit {unit}: {cause}")
        self.stage = stage
        self.unit = unit
        self.cause = cause

    @property
    def transient(self) -> bool:
        return isinstance(self.cause, TransientError)


class EnvelopeError(PermanentError):
    """The request is not a decodable event envelope (HTTP 400)."""


class UnsupportedMediaError(PermanentError):
    """The content type (or CloudEvents mode) is not one we accept (HTTP 415)."""
