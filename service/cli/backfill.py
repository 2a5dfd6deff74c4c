"""``ingest backfill``: sweep a pipeline over a range of logical dates, or under a prefix.

One sweep per date (or one for the prefix), fanned out as the service's sweeps are. The sweeps'
ids are derived from the request, so running the same backfill again after an interruption
resumes each listing from the page its cursor reached.
"""

from __future__ import annotations

import datetime as dt
import hashlib

import click

from service.cli import main
from service.cli.common import load_pipelines, load_settings, pipeline_named, run_async
from service.cli.options import DAY, json_option
from service.cli.sweep import fan_out, show
from service.models import EventMeta, SweepRequested

# The most dates one backfill sweeps (a typo in a year should not start 36,500 sweeps).
MAX_DAYS = 3660


@main.command()
@click.argument("pipeline")
@click.option("--from", "start", type=DAY, help="First date.")
@click.option("--to", "end", type=DAY, help="Last date.")
@click.option("--prefix", help="Sweep every object under this prefix instead of dates.")
@click.option("--force", is_flag=True, help="Re-run units already COMPLETED or FAILED too.")
@json_option("Print the outcome as JSON.")
def backfill(  # noqa: PLR0917 (click passes each option by position)
    pipeline: str,
    start: dt.datetime | None,
    end: dt.datetime | None,
    prefix: str | None,
    force: bool,
    as_json: bool,
) -> None:
    """Backfill PIPELINE: every date from --from to --to (inclusive), or everything under
    --prefix. Units not yet finished are published as work (run in-process when embedded)."""
    settings = load_settings()
    pipelines = load_pipelines(settings)
    found = pipeline_named(pipelines, pipeline)
    events = sweeps(pipeline, start, end, prefix)
    where = f"gs://{found.bucket}/{prefix}" if prefix else f"{len(events)} dates of {pipeline}"
    result = run_async(lambda: fan_out(settings, pipelines, events, force=force))
    show(result, where, as_json=as_json)


def sweeps(
    pipeline: str, start: dt.datetime | None, end: dt.datetime | None, prefix: str | None
) -> list[SweepRequested]:
    if prefix is not None:
        if start or end:
            raise click.UsageError("give --from/--to or --prefix, not both")
        return [SweepRequested(_meta(pipeline, f"prefix:{prefix}"), pipeline, prefix=prefix)]
    if start is None or end is None:
        raise click.UsageError("give --from and --to, or --prefix")
    days = (end.date() - start.date()).days + 1
    if days < 1:
        raise click.UsageError("--to is before --from")
    if days > MAX_DAYS:
        raise click.UsageError(f"{days} dates: at most {MAX_DAYS} in one backfill")
    dates = [(start.date() + dt.timedelta(days=i)).isoformat() for i in range(days)]
    return [SweepRequested(_meta(pipeline, d), pipeline, date=d) for d in dates]


def _meta(pipeline: str, what: str) -> EventMeta:
    digest = hashlib.sha256(f"{pipeline}|{what}".encode()).hexdigest()[:16]
    return EventMeta(
        event_id=f"cli-backfill-{digest}",
        event_type="ingest.cli.backfill",
        source="ingest backfill",
        shape="cli",
    )
