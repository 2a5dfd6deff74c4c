"""``ingest sweep``: list a pipeline's source now and ingest every generation not yet done.

The sweep fans out as the service's does (service/fanout.py): on the embedded backend its units
run from this process's work queue and are shown when all have ended; with a work topic they
are published there and the command says how many.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import replace
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
from service.cli.options import date_option, dry_run_option, json_option
from service.cli.render import cell, number, outcome, rows_line, table
from service.cli.unit_progress import showing
from service.models import EventMeta, SweepRequested

if TYPE_CHECKING:
    from service.pipeline.definition import Pipeline, PipelineSet
    from service.results import Outcome, UnitOutcome
    from service.settings import Settings


@main.command()
@click.argument("pipeline")
@date_option
@click.option(
    "--prefix",
    help="Only objects whose names start with this (within the pipeline's prefix); a backfill:"
    " not bounded by sweep_lookback_days.",
)
@click.option("--force", is_flag=True, help="Re-run units already COMPLETED or FAILED too.")
@dry_run_option("List the objects and their ledger state only.")
@json_option("Print the outcome as JSON.")
def sweep(
    pipeline: str,
    *,
    date: dt.datetime | None,
    prefix: str | None,
    force: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Sweep PIPELINE now, in-process: what a Cloud Scheduler message asks the service to do.

    Lists the pipeline's source prefix (for one logical date with --date) and runs every object
    generation the ledger has not finished. Exits non-zero when any unit failed.
    """
    settings = load_settings()
    pipelines = load_pipelines(settings)
    found = pipeline_named(pipelines, pipeline)
    from service.plans import plan

    meta = EventMeta(
        event_id=f"cli-sweep-{uuid.uuid4().hex[:12]}",
        event_type="ingest.cli.sweep",
        source="ingest sweep",
        shape="cli",
    )
    day = date.date().isoformat() if date else None
    if prefix is not None:
        _check_prefix(found, prefix, day)
    event = SweepRequested(meta, pipeline, date=day, prefix=prefix)
    where = plan(pipelines, event).where or ""
    if dry_run:
        _plan(found, event, where)
        return

    result = run_async(lambda: fan_out(settings, pipelines, [event], force=force))
    show(result, where, as_json=as_json)


def show(result: Outcome, where: str, *, as_json: bool) -> None:
    """Print a sweep's outcome; exit non-zero when it could not list or a unit failed."""
    from service.answers import succeeded
    from service.results import Status

    if as_json:
        print_json(result.summary() | {"where": where, "units_detail": _units_json(result)})
    else:
        _show(result, where)
    failed = [u for u in result.units if not succeeded(u.status)]
    if result.status is Status.TRANSIENT and not result.units:
        raise click.ClickException(f"sweep of {where} failed: {result.reason}")
    if failed:
        raise click.ClickException(f"{len(failed)} of {len(result.units)} units did not succeed")


def _check_prefix(pipeline: Pipeline, prefix: str, day: str | None) -> None:
    """--prefix must lie within the pipeline's prefix (for --date), or nothing could match."""
    own = pipeline.prefix_for(day)
    if not (prefix.startswith(own) or own.startswith(prefix)):
        where = f"pipeline {pipeline.name}'s prefix {own!r}"
        raise click.BadParameter(f"{prefix!r} is outside {where}", param_hint="--prefix")


async def fan_out(
    settings: Settings, pipelines: PipelineSet, events: list[SweepRequested], *, force: bool
) -> Outcome:
    """Run the sweeps through the ingestor; units published in-process are awaited and their
    outcomes gathered into one (a forced sweep runs its units itself)."""
    from service.results import Status, combine
    from service.work_queue import InProcessWork

    where = ", ".join(e.prefix or e.pipeline for e in events)
    async with (
        open_ingestor(settings, pipelines) as ingestor,
        showing(ingestor.board, f"sweeping {where}"),
    ):
        work = ingestor.fanout.work if ingestor.fanout is not None else None
        if isinstance(work, InProcessWork):
            work.kept = []
        swept = [await ingestor.handle(event, force=force) for event in events]
        units = [unit for outcome in swept for unit in outcome.units]  # forced: run in-request
        if isinstance(work, InProcessWork):
            await work.drain()
            units += [unit for outcome in work.kept or [] for unit in outcome.units]
    listed = sum(o.swept or 0 for o in swept)
    failed = next((o for o in swept if o.status is Status.TRANSIENT), None)
    if failed is not None and not units:
        return failed
    published = [o.published for o in swept if o.published is not None]
    outcome = combine(events[0].meta.event_id, units)
    if published and not isinstance(work, InProcessWork):
        return replace(outcome, status=Status.PUBLISHED, swept=listed, published=sum(published))
    return replace(outcome, reason=f"swept {listed} objects", swept=listed)


def _show(result: Outcome, where: str) -> None:
    from service.results import Status

    if result.published is not None:
        console.print(
            f"listed {result.swept or 0} objects under {where}; published {result.published}"
            " work messages: the service runs them as they are delivered",
            markup=False,
            highlight=False,
        )
        return
    if not result.units:
        listed = (
            f"{result.swept} objects listed, every unit finished already"
            if result.swept
            else "nothing to sweep"
        )
        console.print(f"{listed} under {where}", markup=False, highlight=False)
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
