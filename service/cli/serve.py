"""``ingest serve``: run the app under Hypercorn with the project's configuration."""

from __future__ import annotations

import click

from service.cli import main
from service.cli.common import load_settings
from service.errors import ConfigError


@main.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    envvar="INGEST_HOST",
    help="Address to bind (env INGEST_HOST).",
)
@click.option(
    "--port",
    default=8080,
    show_default=True,
    type=int,
    envvar="PORT",
    help="Port to bind (env PORT, as Cloud Run sets it).",
)
@click.option(
    "--embedded",
    "backend",
    flag_value="embedded",
    help="Use the local backends (folder, DuckDB, SQLite).",
)
@click.option("--gcp", "backend", flag_value="gcp", help="Use Google Cloud (or its emulators).")
def serve(host: str, port: int, backend: str | None) -> None:
    """Serve the event endpoint (POST /), /status and health checks under Hypercorn.

    The backend defaults to INGEST_BACKEND; stop with Ctrl-C or SIGTERM (graceful).
    """
    from service.serve import run

    settings = load_settings(backend=backend)
    try:
        run(settings, host, port)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
