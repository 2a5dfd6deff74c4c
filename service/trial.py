"""``ingest try``: one local file through a pipeline exactly as a unit would run, nothing written.

The same Runner and stages as the service (extract, parse, validate, spool, the verdict), over
ports that keep everything in this process (``wiring.trial_ports``): the warehouse counts what
it would load and keeps the first rows, the quarantine object is kept in memory and summarized.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from service import allocator
from service.errors import RowsRejected, StageError
from service.models import EventMeta, ObjectRef, Rows, UnitKey, UnitResult
from service.pipeline.definition import Pipeline
from service.pipeline.runner import Runner
from service.ports import ObjectStore, Warehouse
from service.quarantine_view import QuarantineReport, summarize


class OneObjectStore(ObjectStore, Protocol):
    """The tried file as the store's one object; what the unit wrote (its quarantine) is kept."""

    ref: ObjectRef
    written: dict[ObjectRef, bytes]


class FirstRowsWarehouse(Warehouse, Protocol):
    """A warehouse that loads nothing and keeps the first rows a load would have written."""

    first: Rows


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


async def try_file(
    pipeline: Pipeline, store: OneObjectStore, warehouse: FirstRowsWarehouse
) -> Trial:
    """Run the unit; a rejection is a result too (transient and other failures raise)."""
    allocator.keep_large_blocks()  # as the service does (wiring.py)
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
