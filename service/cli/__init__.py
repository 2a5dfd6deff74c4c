"""The operator's command line: ``ingest serve``, ``ingest replay`` and friends.

``main`` is the click group; each command family lives in its own module of this package and
registers itself on ``main`` when imported at the bottom of this file (one line per family).
"""

# The command modules are imported after `main` exists and only for their side effect.
# ruff: noqa: E402, F401

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="gcp-ingest", prog_name="ingest")
def main() -> None:
    """Event-driven ingestion: Cloud Storage files into BigQuery, exactly once.

    Settings come from INGEST_* environment variables; `ingest check-config` lists them.
    """


import service.cli.backfill
import service.cli.check_config
import service.cli.deadletter
import service.cli.deploy
import service.cli.event
import service.cli.ledger
import service.cli.peek
import service.cli.quarantine
import service.cli.replay
import service.cli.schema
import service.cli.serve
import service.cli.sweep
import service.cli.tables
import service.cli.trial
import service.cli.upload

__all__ = ["main"]
