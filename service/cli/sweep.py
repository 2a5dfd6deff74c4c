"""``ingest sweep``: list a pipeline's source now and ingest every generation not yet done."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING

import click

from service.cli import main
from service.cli.common import (
    console,
    load_pipelines,
    load_settings,
    open_backends,
    open_ingestor,
    pipeline_named,
    print_json,
    run_async,
)
from service.cli.render import cell, number, outcome, rows_line, table
from service.cli.unit_progress import showing
from service.models import EventMeta, SweepRequested

if TYPE_CHECKING:
    from service.ingest import Outcome, UnitOutcome
    from service.pipeline.definition import Pipeline


@main.command()
@click.argument("pipeline")
@click.option(
    "--date",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="The logical date (YYYY-MM-DD) for pipelines whose prefix holds {date}.",
)
@click.option("--force", is_flag=True, help="Re-run units already COMPLETED or FAILED too.")
@click.option("--dry-run", is_flag=True, help="List the objects and their ledger state only.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
def sweep(
    pipeline: str, date: dt.datetime | None, force: bool, dry_run: bool, as_json: bool
) -> None:
    """Sweep PIPELINE now, in-process: what a Cloud Scheduler message asks the service to do.

    Lists the pipeline's source prefix (for one logical date with --date) and runs every object
    generation the ledger has not finished. Exits non-zero when any unit failed.
    """
    settings = load_settings()
    pipelines = load_pipelines(settings)
    found = pipeline_named(pipelines, pipeline)
    from service.answers import succeeded
    from service.ingest import Status
    from service.plans import plan

    meta = EventMeta(
        event_id=f"cli-sweep-{uuid.uuid4().hex[:12]}",
        event_type="ingest.cli.sweep",
        source="ingest sweep",
        shape="cli",
    )
    event = SweepRequested(meta, pipeline, date=date.date().isoformat() if date else None)
    where = plan(pipelines, event).where or ""
    if dry_run:
        _plan(found, event, where)
        return

    async def run() -> Outcome:
        async with (
            open_ingestor(settings, pipelines) as ingestor,
            showing(ingestor.board, f"sweeping {where}"),
        ):
            return await ingestor.sweep(event, force=force)

    result = run_async(run)
    if as_json:
        print_json(result.summary() | {"where": where, "units_detail": _units_json(result)})
    else:
        _show(result, where)
    failed = [u for u in result.units if not succeeded(u.status)]
    if result.status is Status.TRANSIENT and not result.units:
        raise click.ClickException(f"sweep of {where} failed: {result.reason}")
    if failed:
        raise click.ClickException(f"{len(failed)} of {len(result.units)} units did not succeed")


def _show(result: Outcome, where: str) -> None:
    from service.ingest import Status

    if not result.units:
        console.print(f"nothing to sweep under {where}", markup=False, highlight=False)
        return
    t = table(
        f"sweep of {where}",
        ["unit", ("outcome", "nowrap"), ("loaded", "right"), ("quarantined", "right"), "error"],
    )
    for u in result.units:
        error = f"{u.stage}: {u.error}" if u.stage and u.error else u.error
        earlier = u.status is Status.DUPLICATE  # its rows were loaded by an earlier run
        t.add_row(
            cell(u.unit),
            outcome(u.status.value),
            cell(f"({u.rows_loaded:,} before)", "dim") if earlier else number(u.rows_loaded),
            number(u.rows_quarantined),
            cell(error),
        )
    console.print(t)
    summary = result.summary()
    parts = ", ".join(f"{n} {s}" for s, n in summary.get("units", {}).items())
    line = f"{len(result.units)} units: {parts}; {rows_line([summary])}"
    console.print(line, highlight=False)


def _units_json(result: Outcome) -> list[dict[str, object]]:
    return [_unit_json(u) for u in result.units]


def _unit_json(u: UnitOutcome) -> dict[str, object]:
    return {
        "unit": u.unit,
        "status": u.status.value,
        "rows_loaded": u.rows_loaded,
        "rows_quarantined": u.rows_quarantined,
        "rows_rejected": u.rows_rejected,
        "stage": u.stage,
        "error": u.error,
    }


def _plan(pipeline: Pipeline, event: SweepRequested, where: str) -> None:
    """What a sweep would find: each matching object and the state the ledger has for it."""
    from service.plans import sweep_prefix, swept_objects, unit_key

    async def look() -> list[tuple[str, str]]:
        async with open_backends(load_settings()) as backends:
            listed = await backends.store.list(pipeline.bucket, sweep_prefix(pipeline, event))
            rows = []
            for info in swept_objects(pipeline, event, listed, dt.datetime.now(dt.UTC)):
                key = unit_key(pipeline, info.ref)
                stored = await backends.ledger_store.get(key.digest)
                rows.append((str(key), stored.record.state.value if stored else "new"))
            return rows

    rows = run_async(look)
    t = table(f"sweep of {where} (dry run: nothing was run)", ["unit", ("ledger", "nowrap")])
    for unit, state in rows:
        t.add_row(cell(unit), cell(state))
    console.print(t)
    new = sum(1 for _, state in rows if state == "new")
    console.print(f"{len(rows)} objects, {new} not yet in the ledger", highlight=False)
