"""``ingest deadletter list|redrive``: see what sits in a dead-letter subscription, run it again."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import click

from service.cli import main
from service.cli.common import (
    console,
    destination_url,
    err_console,
    load_pipelines,
    load_settings,
    open_backends,
    run_async,
)
from service.cli.options import (
    bounded,
    delivery_options,
    dry_run_option,
    json_option,
)
from service.cli.render import cell, number, outcome, table
from service.errors import ConfigError
from service.ports import MessageSource
from service.recording import RecordedRequest

if TYPE_CHECKING:
    from service.pipeline.definition import PipelineSet
    from service.replay import redrive as redriving
    from service.replay.delivery import Result
    from service.replay.redrive import Peeked
    from service.settings import Settings


@main.group()
def deadletter() -> None:
    """Dead-lettered events: look at them (list), run them again (redrive).

    SUBSCRIPTION is a pull subscription on the dead-letter topic of the subscription that
    pushes to the service (projects/P/subscriptions/S, or S with INGEST_PROJECT set). The
    Pub/Sub client honours PUBSUB_EMULATOR_HOST.
    """


# How long one pull waits for messages (list and redrive alike).
wait_option = click.option(
    "--wait",
    type=click.FloatRange(1, 60),
    default=5.0,
    show_default=True,
    help="Seconds one pull waits for messages; an empty pull ends the collection.",
)


@deadletter.command("list")
@click.argument("subscription")
@bounded("--limit", low=1, high=10_000, default=100, help="Messages to look at, at most.")
@wait_option
@json_option("Print one JSON line per message.")
def list_messages(subscription: str, limit: int, wait: float, as_json: bool) -> None:
    """Peek into SUBSCRIPTION: event id, type, object, delivery count, first error if known.

    This is a peek: messages are pulled, described and given straight back (ack deadline 0);
    nothing is acknowledged. Pub/Sub still counts each pull as a delivery, and the messages
    are leased to this command while it runs. The ledger column shows what the service
    recorded for each unit (needs the pipelines file; skipped when it cannot be read).
    """
    settings = load_settings()
    try:
        from service.wiring import load_config

        pipelines: PipelineSet | None = load_config(settings)
    except ConfigError as exc:
        err_console.print(f"ledger state not shown: {exc}", highlight=False, markup=False)
        pipelines = None
    rows = run_async(lambda: _peek(settings, subscription, limit, wait, pipelines))
    if as_json:
        for row in rows:
            click.echo(json.dumps(_peeked_json(row), ensure_ascii=False))
        return
    t = table(
        f"{subscription}: {len(rows)} messages (peek: nothing consumed)",
        ["event id", "type", "object / request", ("deliveries", "right"), "ledger", "error"],
    )
    for row in rows:
        t.add_row(
            cell(row.message_id),
            cell(row.kind),
            cell(row.target),
            number(row.deliveries),
            cell(row.ledger),
            cell(row.error),
        )
    console.print(t)


async def _peek(
    settings: Settings,
    subscription: str,
    limit: int,
    wait: float,
    pipelines: PipelineSet | None,
) -> list[Peeked]:
    from service.replay import redrive as redriving
    from service.wiring import open_subscription

    source = open_subscription(settings, subscription)
    try:
        held = await redriving.pull_all(source, limit, wait)
        try:
            rows = [redriving.describe(h.message, subscription, pipelines) for h in held]
            if pipelines is not None and any(r.units for r in rows):
                rows = await _with_ledger(settings, rows)
        finally:
            await redriving.give_back(source, held)
    finally:
        await source.close()
    return rows


async def _with_ledger(settings: Settings, rows: list[Peeked]) -> list[Peeked]:
    """Each unit's ledger state; the recorded error of a FAILED one is the first error known."""
    found: list[Peeked] = []
    async with open_backends(settings) as backends:
        for row in rows:
            if not row.units:
                found.append(row)
                continue
            states, errors = [], []
            for unit in row.units:
                stored = await backends.ledger_store.get(unit.digest)
                record = stored.record if stored else None
                states.append(f"{unit.pipeline}: {record.state.value if record else 'none'}")
                if record is not None and record.error:
                    errors.append(record.error)
            error = row.error or "; ".join(errors) or None
            found.append(replace(row, ledger="; ".join(states), error=error))
    return found


def _peeked_json(row: Peeked) -> dict[str, Any]:
    return {
        "message_id": row.message_id,
        "type": row.kind,
        "object": row.target,
        "deliveries": row.deliveries,
        "ledger": row.ledger,
        "error": row.error,
    }


@deadletter.command()
@click.argument("subscription")
@delivery_options
@bounded(
    "--limit",
    low=1,
    high=100_000,
    default=1000,
    help="Messages taken in one run; run again for more.",
)
@dry_run_option("Show what would run and give every message back.")
@wait_option
@json_option("Print one JSON line per message.")
def redrive(
    *,
    subscription: str,
    url: str | None,
    in_process: bool,
    limit: int,
    dry_run: bool,
    concurrency: int | None,
    headers: dict[str, str],
    timeout: float,
    wait: float,
    as_json: bool,
) -> None:
    """Run the events dead-lettered in SUBSCRIPTION again; acknowledge the handled ones.

    Each message is turned back into the push request its original subscription sent and run
    against the service at --to URL, or --in-process. A message is acknowledged only after
    its event ended loaded, duplicate, ignored, or failed-and-recorded; every other one
    (busy, transient, undecodable, service unreachable) is given back to the subscription at
    once, so nothing is acknowledged that was not handled. --dry-run consumes nothing.

    Exits non-zero when any message was left in the subscription.
    """
    settings = load_settings(replay_concurrency=concurrency)
    url = destination_url(url, settings, {"--in-process": in_process}, dry_run=dry_run)
    pipelines = load_pipelines(settings) if (dry_run or in_process) else None
    # Imported here: the decoders and the HTTP client are not needed for `ingest --help`.
    from service.replay import delivery
    from service.replay import redrive as redriving

    started = time.perf_counter()
    sending = delivery.Sending(
        settings.replay_concurrency, headers=headers if url else {}, timeout=timeout
    )

    async def run_one_batch(requests: list[RecordedRequest]) -> list[Result]:
        if url:
            return await delivery.over_http(url, requests, sending, lambda: None)
        return await delivery.in_process(settings, requests, sending, lambda: None)

    async def work() -> list[redriving.Redriven]:
        from service.wiring import open_subscription

        source = open_subscription(settings, subscription)
        try:
            held = await redriving.pull_all(source, limit, wait)
            if dry_run:
                assert pipelines is not None
                return await _dry_run(source, subscription, held, pipelines)
            return await redriving.redrive(source, subscription, held, run_one_batch)
        finally:
            await source.close()

    try:
        rows = run_async(work)
    except delivery.Unreachable as exc:
        raise click.ClickException(f"{exc}; every message was given back") from exc
    _report(subscription, rows, time.perf_counter() - started, as_json=as_json, dry=dry_run)


async def _dry_run(
    source: MessageSource, subscription: str, held: list[redriving.Held], pipelines: PipelineSet
) -> list[redriving.Redriven]:
    from service.replay import redrive as redriving
    from service.replay.dry_run import dry_run

    try:
        requests = [redriving.push_request(h.message, subscription) for h in held]
        plans = dry_run(pipelines, requests)
    finally:
        await redriving.give_back(source, held)
    return [redriving.Redriven(h, 0, p.body, acked=False) for h, p in zip(held, plans, strict=True)]


def _report(
    subscription: str, rows: list[redriving.Redriven], seconds: float, *, as_json: bool, dry: bool
) -> None:
    if as_json:
        for row in rows:
            line = {
                "message_id": row.held.message.message_id,
                "http_status": row.http_status,
                "acked": row.acked,
                **row.body,
            }
            click.echo(json.dumps(line, ensure_ascii=False))
    else:
        title = f"{subscription}: " + ("dry run, nothing consumed" if dry else "re-driven")
        t = table(title, ["message", "event", ("HTTP", "right"), "outcome", "acked", "reason"])
        for row in rows:
            t.add_row(
                cell(row.held.message.message_id),
                cell(row.body.get("event_id")),
                cell(row.http_status or "-"),
                outcome(row.status),
                cell("yes" if row.acked else "no"),
                cell(row.body.get("reason")),
            )
        console.print(t)
    acked = sum(r.acked for r in rows)
    left = len(rows) - acked
    out = err_console if as_json else console
    out.print(
        f"{len(rows)} messages in {seconds:.2f} s: {acked} acknowledged, {left} given back",
        highlight=False,
    )
    if left and not dry:
        raise click.ClickException(f"{left} of {len(rows)} messages were not handled; still there")
