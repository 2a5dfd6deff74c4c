"""``ingest ledger``: inspect the idempotency ledger and re-run units that failed."""

from __future__ import annotations

import re
import uuid
from dataclasses import asdict
from typing import TYPE_CHECKING

import click
from rich.table import Table

from service.cli import main
from service.cli.common import (
    console,
    load_pipelines,
    load_settings,
    open_backends,
    open_ingestor,
    parse_since,
    print_json,
    run_async,
)
from service.cli.options import bounded, json_option
from service.cli.render import cell, number, outcome, table
from service.cli.unit_progress import showing
from service.errors import NotFoundError
from service.models import EventMeta, LedgerRecord, ObjectRef, UnitKey, UnitState
from service.ports import LedgerQuery

if TYPE_CHECKING:
    from service.ingest import Ingestor
    from service.ports import IdempotencyStore
    from service.results import UnitOutcome

# A ledger key: 40 hex digits, or (to look one up) its first 6 or more.
KEY_PATTERN = re.compile(r"^[0-9a-f]{6,40}$")
# How many of the most recent units a key prefix is looked up among.
PREFIX_SCAN = 5000


@main.group()
def ledger() -> None:
    """Inspect units in the idempotency ledger and re-run failed ones.

    KEY is a ledger key (40 hex digits, or its first 6 or more), or the unit as printed
    everywhere: PIPELINE:gs://BUCKET/NAME#GENERATION.
    """


@ledger.command("list")
@click.option(
    "--state",
    type=click.Choice([s.value for s in UnitState], case_sensitive=False),
    help="Only units in this state.",
)
@click.option(
    "--since", metavar="TIME", help="Updated since: ISO 8601 time, or an age (30m, 2h, 7d)."
)
@click.option("--pipeline", help="Only units of this pipeline.")
@bounded("--limit", low=1, high=10_000, default=50, help="At most this many.")
@json_option("Print the units as JSON.")
def list_units(
    state: str | None, since: str | None, pipeline: str | None, limit: int, as_json: bool
) -> None:
    """Units, most recently updated first."""
    from service.status_view import unit_view

    wanted = UnitState(state.upper()) if state else None
    after = parse_since(since)

    async def fetch() -> list[LedgerRecord]:
        async with open_backends(load_settings()) as backends:
            stored = await backends.ledger_store.list(
                LedgerQuery(wanted, pipeline, after), limit=limit
            )
        return [s.record for s in stored]

    records = run_async(fetch)
    if as_json:
        print_json([unit_view(r) for r in records])
        return
    t = table(
        "ledger",
        [
            ("key", "nowrap"),
            ("state", "nowrap"),
            "unit",
            ("loaded", "right"),
            ("quarantined", "right"),
            ("attempt", "right"),
            ("updated", "nowrap"),
            "error",
        ],
    )
    for r in records:
        loaded = r.result.rows_loaded if r.result else None
        quarantined = r.result.rows_quarantined if r.result else None
        t.add_row(
            cell(r.key[:12]),
            cell(r.state.value),
            cell(r.unit),
            number(loaded),
            number(quarantined),
            number(r.attempt),
            cell(r.updated_at.strftime("%Y-%m-%d %H:%M:%S")),
            cell(r.error),
        )
    console.print(t)
    console.print(f"{len(records)} units", highlight=False)


@ledger.command()
@click.argument("key")
@json_option("Print the record as JSON.")
def show(key: str, as_json: bool) -> None:
    """Everything the ledger holds about one unit."""
    from service.status_view import unit_view

    async def fetch() -> LedgerRecord:
        async with open_backends(load_settings()) as backends:
            return await find(backends.ledger_store, key)

    record = run_async(fetch)
    view = unit_view(record)
    if as_json:
        print_json(view | {"owner": record.owner, "fingerprint": record.fingerprint})
        return
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    stages = ", ".join(f"{k} {v:.3f} s" for k, v in view["stages"].items())
    for name, value in view.items():
        shown = stages if name == "stages" else value
        grid.add_row(name, outcome(str(value)) if name == "state" else cell(shown))
    grid.add_row("owner", cell(record.owner))
    grid.add_row("lease expires", cell(record.lease_expires_at.isoformat()))
    grid.add_row("fingerprint", cell(record.fingerprint))
    console.print(grid)


@ledger.command()
@click.argument("keys", nargs=-1)
@click.option(
    "--all-failed", is_flag=True, help="Retry every FAILED unit (with --since/--pipeline)."
)
@click.option("--since", metavar="TIME", help="With --all-failed: failed since (ISO time or 2h).")
@click.option("--pipeline", help="With --all-failed: only this pipeline's units.")
@json_option("Print the outcomes as JSON.")
def retry(
    keys: tuple[str, ...], all_failed: bool, since: str | None, pipeline: str | None, as_json: bool
) -> None:
    """Re-run FAILED units in-process (a forced re-run of the same object generation).

    The event is rebuilt from the ledger record: its pipeline, and the object generation it
    names, read again from the object store. Exits non-zero when any unit fails again.
    """
    if bool(keys) == all_failed:
        raise click.UsageError("give KEY... or --all-failed")
    if (since or pipeline) and not all_failed:
        raise click.UsageError("--since and --pipeline go with --all-failed")
    settings = load_settings()
    pipelines = load_pipelines(settings)
    after = parse_since(since)

    async def run() -> list[UnitOutcome]:
        async with open_ingestor(settings, pipelines) as ingestor:
            store = ingestor.ledger.store
            if all_failed:
                failed = LedgerQuery(UnitState.FAILED, pipeline, after)
                records = [s.record for s in await store.list(failed, limit=10_000)]
            else:
                records = [await find(store, key) for key in keys]
            for record in records:  # all checked before any runs
                _check_retryable(record)
            async with showing(ingestor.board, "retrying"):
                return [await _rerun(ingestor, record) for record in records]

    outcomes = run_async(run)
    if as_json:
        print_json([asdict(o) | {"status": o.status.value} for o in outcomes])
    elif outcomes:
        _show_retried(outcomes)
    else:
        console.print("no FAILED units to retry", highlight=False)
    from service.results import Status

    bad = [o for o in outcomes if o.status is not Status.LOADED]
    if bad:
        raise click.ClickException(f"{len(bad)} of {len(outcomes)} units did not load")


def _show_retried(outcomes: list[UnitOutcome]) -> None:
    t = table(
        "retry",
        ["unit", ("outcome", "nowrap"), ("loaded", "right"), ("quarantined", "right"), "error"],
    )
    for o in outcomes:
        t.add_row(
            cell(o.unit),
            outcome(o.status.value),
            number(o.rows_loaded),
            number(o.rows_quarantined),
            cell(o.error),
        )
    console.print(t)


def _check_retryable(record: LedgerRecord) -> None:
    if record.state is UnitState.FAILED:
        return
    if record.state is UnitState.COMPLETED:
        raise click.ClickException(
            f"{record.unit} is COMPLETED; only FAILED units are retried"
            " (replay its event with --force to re-run it)"
        )
    raise click.ClickException(
        f"{record.unit} is IN_PROGRESS (lease until {record.lease_expires_at.isoformat()}):"
        " it is running, or will be taken over when the lease expires"
    )


async def _rerun(ingestor: Ingestor, record: LedgerRecord) -> UnitOutcome:
    """The unit run again, forced; a unit that cannot be rebuilt is a failed outcome saying why,
    so that one missing object does not hide what the other retries did."""
    from service.results import Status, UnitOutcome

    unit = UnitKey.parse(record.unit)
    pipeline = ingestor.pipelines.get(unit.pipeline) if unit else None
    if unit is None or pipeline is None:
        why = "names no object" if unit is None else f"unknown pipeline {unit.pipeline!r}"
        return UnitOutcome(record.unit, Status.FAILED, error=f"cannot re-run: {why}")
    try:
        info = await ingestor.store.stat(ObjectRef(unit.bucket, unit.name, unit.generation))
    except NotFoundError as exc:
        return UnitOutcome(record.unit, Status.FAILED, error=f"cannot re-run: {exc}")
    meta = EventMeta(
        event_id=f"cli-retry-{uuid.uuid4().hex[:12]}",
        event_type="ingest.cli.retry",
        source="ingest ledger retry",
        shape="cli",
    )
    return await ingestor.run_unit(pipeline, info, meta, force=True)


async def find(store: IdempotencyStore, key: str) -> LedgerRecord:
    """The record a KEY names: a full key, a unit string, or a unique key prefix."""
    wanted = key.strip()
    unit = UnitKey.parse(wanted)
    if unit is not None:
        wanted = unit.digest
    elif not KEY_PATTERN.match(wanted.lower()):
        raise click.ClickException(
            f"{key!r} is neither a ledger key (hex) nor a unit (PIPELINE:gs://BUCKET/NAME#GEN)"
        )
    wanted = wanted.lower()
    if len(wanted) == 40:
        stored = await store.get(wanted)
        if stored is None:
            raise click.ClickException(f"no unit {key} in the ledger")
        return stored.record
    matches = [
        s.record for s in await store.list(limit=PREFIX_SCAN) if s.record.key.startswith(wanted)
    ]
    if not matches:
        raise click.ClickException(
            f"no unit with a key starting {wanted} among the {PREFIX_SCAN} most recent"
        )
    if len(matches) > 1:
        raise click.ClickException(f"{wanted} matches {len(matches)} units: give more of the key")
    return matches[0]
