"""``ingest upload``: put a local file into the configured object store."""

from __future__ import annotations

from pathlib import Path

import click

from service.cli import main
from service.cli.common import console, load_settings, open_backends, run_async
from service.models import ObjectRef

# Content types by extension for the sample formats; anything else is plain bytes.
CONTENT_TYPES = {
    ".csv": "text/csv",
    ".json": "application/json",
    ".jsonl": "application/x-ndjson",
    ".parquet": "application/parquet",
}


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
    data = source.read_bytes()
    content_type = CONTENT_TYPES.get(source.suffix, "application/octet-stream")

    async def put() -> ObjectRef:
        async with open_backends(load_settings()) as backends:
            return await backends.store.write(ObjectRef(bucket, name), data, content_type)

    ref = run_async(put)
    console.print(f"{ref.uri} generation {ref.generation}", markup=False, highlight=False)
