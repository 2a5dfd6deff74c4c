"""``ingest try``: one local file through a pipeline exactly as a unit would run, nothing written.

The same Runner and stages as the service (extract, parse, validate, spool, the verdict), over
ports that keep everything in this process (``wiring.trial_ports``): the warehouse counts what
it would load and keeps the first rows, the quarantine object is kept in memory and summarized.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from service.errors import RowsRejected, StageError
from service.models import EventMeta, Rows, UnitKey, UnitResult
from service.pipeline.definition import Pipeline
from service.pipeline.runner import Runner
from service.quarantine_view import QuarantineReport, summarize

if TYPE_CHECKING:
    from service.adapters.local.dry import DryWarehouse, OneFileStore

# Bytes read from the file at a time (the service's default chunk).
CHUNK_BYTES = 8 * 1024 * 1024
# The generation a tried file stands as.
GENERATION = 1


@dataclass(frozen=True)
class Trial:
    unit: str
    result: UnitResult
    rejected: str | None  # "stage: reason" when the file would be rejected whole
    bad_rows: QuarantineReport | None
    first_rows: Rows


def object_name(pipeline: Pipeline, path: Path, name: str | None) -> str:
    """The object name the file stands as: given, else the file's name under the prefix
    (transforms and partitions that read the name see this one)."""
    if name:
        return name
    prefix = pipeline.prefix.split("{", 1)[0]  # a dated prefix: up to its first placeholder
    return f"{prefix}{path.name}"


async def try_file(pipeline: Pipeline, store: OneFileStore, warehouse: DryWarehouse) -> Trial:
    """Run the unit; a rejection is a result too (transient and other failures raise)."""
    runner = Runner(store, warehouse, chunk_bytes=CHUNK_BYTES)
    ref = store.ref
    key = UnitKey(pipeline.name, ref.bucket, ref.name, ref.generation or GENERATION)
    info = await store.stat(ref)
    ctx = runner.context(key, pipeline, info, EventMeta("ingest-try", "ingest.cli.try", "try"))
    rejected = None
    try:
        result = await runner.run(ctx)
    except StageError as exc:
        if not isinstance(exc.cause, RowsRejected):
            raise
        result, rejected = exc.cause.result, f"{exc.stage}: {exc.cause}"
    finally:
        runner.blocks.shutdown(wait=False)
    report = None
    for written_ref, data in store.written.items():
        report = summarize(written_ref.uri, data.split(b"\n"))
    return Trial(str(key), result, rejected, report, warehouse.first)
