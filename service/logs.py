"""Logging: JSON lines in Cloud Logging's structure on Cloud Run, readable text in a terminal.

What a line is about (the request's trace, the event id, the unit and its pipeline) lives in
context variables: the HTTP edge sets the trace and the event id, the ingestor sets the unit, and
every line logged under them carries them, including lines from threads started with
``asyncio.to_thread`` (which copies the context). Fields passed in ``extra`` win over the context.
While a unit runs, its span (tracing.py) takes the trace's place, so its lines name that span.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from service.settings import Settings

# The special keys Cloud Logging lifts out of a JSON line into the LogEntry.
TRACE_KEY = "logging.googleapis.com/trace"
SPAN_KEY = "logging.googleapis.com/spanId"
SAMPLED_KEY = "logging.googleapis.com/trace_sampled"
LABELS_KEY = "logging.googleapis.com/labels"
SOURCE_KEY = "logging.googleapis.com/sourceLocation"

# Fields a log call may pass in ``extra`` (or bind with ``log_context``) that become labels.
LABEL_FIELDS = ("event_id", "unit", "pipeline", "outcome", "state")

# W3C traceparent: version-traceid-parentid-flags, lowercase hex.
TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
# X-Cloud-Trace-Context: TRACE_ID[/SPAN_ID][;o=OPTIONS], the span id in decimal.
CLOUD_TRACE = re.compile(r"^([0-9a-fA-F]{32})(?:/(\d{1,20}))?(?:;o=(\d+))?")


@dataclass(frozen=True)
class Trace:
    trace_id: str  # 32 lowercase hex digits
    span_id: str | None = None  # 16 lowercase hex digits
    sampled: bool = False


def parse_traceparent(value: str | None) -> Trace | None:
    match = TRACEPARENT.match((value or "").strip())
    if match is None:
        return None
    version, trace_id, span_id, flags = match.groups()
    # Version ff and all-zero ids are invalid by the W3C spec.
    if version == "ff" or set(trace_id) == {"0"} or set(span_id) == {"0"}:
        return None
    return Trace(trace_id, span_id, bool(int(flags, 16) & 1))


def parse_cloud_trace(value: str | None) -> Trace | None:
    match = CLOUD_TRACE.match((value or "").strip())
    if match is None:
        return None
    trace_id, span, options = match.groups()
    if set(trace_id) == {"0"}:
        return None
    span_id = None
    if span is not None and 0 < int(span) < 2**64:
        span_id = f"{int(span):016x}"
    return Trace(trace_id.lower(), span_id, options == "1")


def trace_from_headers(traceparent: str | None, cloud_trace: str | None) -> Trace | None:
    """The request's trace: the W3C header first, Google's own header otherwise."""
    return parse_traceparent(traceparent) or parse_cloud_trace(cloud_trace)


def trace_from_raw_headers(headers: Iterable[tuple[bytes, bytes]]) -> Trace | None:
    """The trace from an ASGI header list (lower-case names, latin-1 values)."""
    traceparent = cloud_trace = None
    for name, value in headers:
        if name == b"traceparent":
            traceparent = value.decode("latin-1")
        elif name == b"x-cloud-trace-context":
            cloud_trace = value.decode("latin-1")
    if traceparent is None and cloud_trace is None:
        return None
    return trace_from_headers(traceparent, cloud_trace)


_trace: ContextVar[Trace | None] = ContextVar("log_trace", default=None)
# Label pairs (a tuple: a context variable's default must not be mutable).
_labels: ContextVar[tuple[tuple[str, str], ...]] = ContextVar("log_labels", default=())


def bind_trace(trace: Trace | None) -> None:
    """Set the trace for the rest of the current task (the request)."""
    _trace.set(trace)


def current_trace() -> Trace | None:
    return _trace.get()


@contextlib.contextmanager
def bound_trace(trace: Trace) -> Iterator[None]:
    """The trace (a unit's span) for the lines logged inside the block only."""
    token = _trace.set(trace)
    try:
        yield
    finally:
        _trace.reset(token)


def _merged(labels: Mapping[str, object]) -> tuple[tuple[str, str], ...]:
    merged = dict(_labels.get())
    merged.update({k: str(v) for k, v in labels.items() if v is not None})
    return tuple(merged.items())


def bind_labels(**labels: object) -> None:
    """Add labels for the rest of the current task; ``None`` values are left out."""
    _labels.set(_merged(labels))


@contextlib.contextmanager
def log_context(**labels: object) -> Iterator[None]:
    """Labels for the lines logged inside the block only."""
    token = _labels.set(_merged(labels))
    try:
        yield
    finally:
        _labels.reset(token)


def current_labels(record: logging.LogRecord | None = None) -> dict[str, str]:
    labels = dict(_labels.get())
    if record is not None:
        labels.update({f: str(getattr(record, f)) for f in LABEL_FIELDS if hasattr(record, f)})
    return labels


class CloudLoggingFormatter(logging.Formatter):
    """One JSON object per line, in the structure Cloud Run's log agent understands."""

    def __init__(self, project: str | None = None) -> None:
        super().__init__()
        self.project = project
        # The "2026-11-22T03:04:05" part of the last second formatted (one line per event
        # is on the hot path; most share their second with the line before).
        self._second = -1
        self._second_text = ""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "severity": record.levelname,
            "message": record.getMessage(),
            "time": self._time(record.created),
            "logger": record.name,
            SOURCE_KEY: {
                "file": record.pathname,
                "line": str(record.lineno),
                "function": record.funcName,
            },
        }
        labels = current_labels(record)
        if labels:
            entry[LABELS_KEY] = labels
        entry.update(self._trace_fields())
        if record.exc_info:
            entry["stack_trace"] = self.formatException(record.exc_info)
        try:
            return orjson.dumps(entry).decode()
        except TypeError:
            # A lone surrogate (or a value that is not JSON): escaped rather than lost.
            return json.dumps(entry, default=str)

    def _time(self, created: float) -> str:
        """RFC 3339 in UTC with microseconds, as ``datetime.isoformat`` writes it."""
        second = int(created)
        if second != self._second:
            self._second_text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = second
        micros = min(int((created - second) * 1_000_000), 999_999)
        return f"{self._second_text}.{micros:06d}+00:00"

    def _trace_fields(self) -> dict[str, object]:
        trace = _trace.get()
        # Cloud Logging links a line to its trace only by the full resource name.
        if trace is None or not self.project:
            return {}
        fields: dict[str, object] = {
            TRACE_KEY: f"projects/{self.project}/traces/{trace.trace_id}",
            SAMPLED_KEY: trace.sampled,
        }
        if trace.span_id:
            fields[SPAN_KEY] = trace.span_id
        return fields


class TextFormatter(logging.Formatter):
    """A line for people: time, level, logger, message, then the labels in brackets."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        labels = current_labels(record)
        if not labels:
            return line
        tags = " ".join(f"{k}={v}" for k, v in labels.items())
        head, newline, rest = line.partition("\n")  # keep a traceback below the labels
        return f"{head} [{tags}]{newline}{rest}"


def use_json(settings: Settings, stream_is_tty: bool) -> bool:
    return settings.log_format == "json" or (settings.log_format == "auto" and not stream_is_tty)


def configure_logging(settings: Settings) -> None:
    # Neither format shows them; skipping them makes every log record cheaper.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    if use_json(settings, sys.stderr.isatty()):
        handler.setFormatter(CloudLoggingFormatter(settings.project))
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_ingest", False):
            root.removeHandler(existing)
    handler._ingest = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(settings.log_level)
