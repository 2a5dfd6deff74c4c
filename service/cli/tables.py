"""``ingest tables`` and ``ingest upload``: look at the warehouse, put files in the store."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from service.cli import main
from service.cli.common import console, load_settings, run_async
from service.models import ObjectRef

# Content types by extension for the sample formats; anything else is plain bytes.
CONTENT_TYPES = {
    ".csv": "text/csv",
    ".json": "application/json",
    ".jsonl": "application/x-ndjson",
    ".parquet": "application/parquet",
}


@main.command()
def tables() -> None:
    """Show every table in the warehouse with its row count."""
    from service.wiring import build_backends

    async def show() -> list[tuple[str, int]]:
        backends = build_backends(load_settings())
        try:
            return await backends.warehouse.tables()
        finally:
            await backends.close()

    rows = run_async(show)
    table = Table(title="warehouse")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, count in rows:
        table.add_row(name, str(count))
    console.print(table)


@main.command()
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("destination")
def upload(source: Path, destination: str) -> None:
    """Put a local file into the configured object store at gs://BUCKET/NAME.

    Prints the object's URI and new generation, ready for `ingest event storage`.
    """
    bucket, _, name = destination.removeprefix("gs://").partition("/")
    if not destination.startswith("gs://") or not bucket or not name:
        raise click.UsageError("DESTINATION must be gs://BUCKET/NAME")
    from service.wiring import build_backends

    data = source.read_bytes()
    content_type = CONTENT_TYPES.get(source.suffix, "application/octet-stream")

    async def put() -> ObjectRef:
        backends = build_backends(load_settings())
        try:
            return await backends.store.write(ObjectRef(bucket, name), data, content_type)
        finally:
            await backends.close()

    ref = run_async(put)
    console.print(f"{ref.uri} generation {ref.generation}", markup=False, highlight=False)
