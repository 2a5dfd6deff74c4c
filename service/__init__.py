"""Event-driven ingestion: Cloud Storage files and scheduled sweeps into BigQuery, exactly once."""

from __future__ import annotations

__version__ = "0.1.0"
