"""Logging: JSON lines in Cloud Logging's structure on Cloud Run, readable text in a terminal."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from service.settings import Settings

# Fields a log call may pass in ``extra`` that become Cloud Logging labels.
LABEL_FIELDS = ("event_id", "unit", "pipeline", "outcome", "state")


class CloudLoggingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "severity": record.levelname,
            "message": record.getMessage(),
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "logger": record.name,
        }
        labels = {f: str(getattr(record, f)) for f in LABEL_FIELDS if hasattr(record, f)}
        if labels:
            entry["logging.googleapis.com/labels"] = labels
        trace = getattr(record, "trace", None)
        if trace:
            entry["logging.googleapis.com/trace"] = trace
        if record.exc_info:
            entry["stack_trace"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(settings: Settings) -> None:
    use_json = settings.log_format == "json" or (
        settings.log_format == "auto" and not sys.stderr.isatty()
    )
    handler = logging.StreamHandler(sys.stderr)
    if use_json:
        handler.setFormatter(CloudLoggingFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_ingest", False):
            root.removeHandler(existing)
    handler._ingest = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(settings.log_level)
