"""``ingest serve``: run the app under Hypercorn with the project's configuration."""

from __future__ import annotations

import click

from service.cli import main
from service.cli.common import load_settings
from service.errors import ConfigError


@main.command()
@click.option("--host", help="Address to bind (default: INGEST_HOST, else 127.0.0.1).")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    help="Port to bind (default: PORT, as Cloud Run sets it, else 8080).",
)
@click.option(
    "--embedded",
    "backend",
    flag_value="embedded",
    help="Use the local backends (folder, DuckDB, SQLite).",
)
@click.option("--gcp", "backend", flag_value="gcp", help="Use Google Cloud (or its emulators).")
def serve(host: str | None, port: int | None, backend: str | None) -> None:
    """Serve the event endpoint (POST /), /status and health checks under Hypercorn.

    The backend defaults to INGEST_BACKEND; stop with Ctrl-C or SIGTERM (graceful).
    """
    from service.serve import run

    settings = load_settings(backend=backend, host=host, port=port)
    try:
        run(settings, settings.host, settings.port)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
