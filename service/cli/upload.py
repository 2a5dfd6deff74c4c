"""``ingest upload``: put local files and folders into the configured object store."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import click

from service.cli import main
from service.cli.common import load_settings, open_backends, print_json, run_async
from service.cli.options import bounded, json_option
from service.errors import IngestError
from service.models import ObjectRef
from service.ports import ObjectStore

# Content types by extension for the sample formats; anything else is plain bytes.
CONTENT_TYPES = {
    ".csv": "text/csv",
    ".json": "application/json",
    ".jsonl": "application/x-ndjson",
    ".parquet": "application/parquet",
}
USAGE = "DESTINATION must be gs://BUCKET/NAME (one file) or gs://BUCKET/[PREFIX/] (files, folders)"


@dataclass(frozen=True)
class Upload:
    """One local file, the object name it goes to, and (once done) its generation or error."""

    source: Path
    name: str
    generation: int | None = None
    error: str | None = None


def plan(sources: list[Path], destination: str) -> tuple[str, list[Upload]]:
    """The bucket and the object name of every file, as ``cp -r`` names copies.

    One file to gs://BUCKET/NAME is that name; otherwise DESTINATION is a folder: a file goes
    to PREFIX/FILE and a folder's files to PREFIX/FOLDER/RELATIVE/PATH.
    """
    bucket, _, name = destination.removeprefix("gs://").partition("/")
    if not destination.startswith("gs://") or not bucket:
        raise click.UsageError(USAGE)
    if len(sources) == 1 and sources[0].is_file() and not destination.endswith("/"):
        if not name:
            raise click.UsageError(USAGE)
        return bucket, [Upload(sources[0], name)]
    prefix = name if not name or name.endswith("/") else f"{name}/"
    uploads: list[Upload] = []
    for source in sources:
        if source.is_dir():
            files = sorted(p for p in source.rglob("*") if p.is_file())
            if not files:
                raise click.UsageError(f"{source}: no files in this folder")
            base = f"{prefix}{source.resolve().name}/"
            uploads += [Upload(p, base + p.relative_to(source).as_posix()) for p in files]
        else:
            uploads.append(Upload(source, prefix + source.name))
    seen: dict[str, Path] = {}
    for u in uploads:
        if u.name in seen:
            raise click.UsageError(
                f"{seen[u.name]} and {u.source} would both be gs://{bucket}/{u.name}"
            )
        seen[u.name] = u.source
    return bucket, uploads


async def send(
    store: ObjectStore, bucket: str, uploads: list[Upload], concurrency: int
) -> list[Upload]:
    """Every upload, at most ``concurrency`` at a time (each file is read whole while it goes);
    a file that fails is reported with its reason and does not stop the others."""
    gate = asyncio.Semaphore(concurrency)

    async def one(u: Upload) -> Upload:
        async with gate:
            content_type = CONTENT_TYPES.get(u.source.suffix, "application/octet-stream")
            try:
                data = await asyncio.to_thread(u.source.read_bytes)
                ref = await store.write(ObjectRef(bucket, u.name), data, content_type)
            except OSError as exc:
                return Upload(u.source, u.name, error=f"cannot read {u.source}: {exc.strerror}")
            except IngestError as exc:
                return Upload(u.source, u.name, error=str(exc))
            return Upload(u.source, u.name, generation=ref.generation)

    return list(await asyncio.gather(*(one(u) for u in uploads)))


@main.command()
@click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.argument("destination")
@bounded("-c", "--concurrency", low=1, high=64, default=8, help="Files uploaded at once.")
@json_option("Print each object as JSON.")
def upload(sources: tuple[Path, ...], destination: str, concurrency: int, as_json: bool) -> None:
    """Put local files (or folders, with all their files) into the object store.

    One file goes to gs://BUCKET/NAME; several, or a folder, go under gs://BUCKET/PREFIX/, as
    `cp -r` copies them (a folder's files keep their paths below the folder's name). Prints each
    object's URI and new generation, ready for `ingest event storage`.
    """
    bucket, uploads = plan(list(sources), destination)

    async def put() -> list[Upload]:
        async with open_backends(load_settings(), writes=True) as backends:
            return await send(backends.store, bucket, uploads, concurrency)

    done = run_async(put)
    if as_json:
        print_json(
            [
                {
                    "source": str(u.source),
                    "uri": f"gs://{bucket}/{u.name}",
                    "generation": u.generation,
                    "error": u.error,
                }
                for u in done
            ]
        )
    else:
        for u in done:
            shown = f"generation {u.generation}" if u.error is None else f"FAILED: {u.error}"
            click.echo(f"gs://{bucket}/{u.name} {shown}")  # one line each, never wrapped
    failed = [u for u in done if u.error is not None]
    if failed:
        raise click.ClickException(f"{len(failed)} of {len(done)} files were not uploaded")
