"""``ingest replay``: recorded events against a running service, in-process, or decoded only.

The command's options, its progress bar and its table of outcomes; the engine is service/replay/.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from service.cli import main
from service.cli.common import (
    console,
    destination_url,
    err_console,
    load_pipelines,
    load_settings,
    require_data,
    run_async,
)
from service.cli.options import (
    delivery_options,
    dry_run_option,
    json_option,
)
from service.cli.render import cell, number, outcome, rows_line, source_label, table
from service.errors import IngestError
from service.recording import RecordedRequest, load_requests, parse_requests
from service.settings import REPLAY_RETRIES

if TYPE_CHECKING:
    from service.replay.delivery import Result, Sending
    from service.settings import Settings

# Past this many events the table shows only the ones that did not succeed.
TABLE_LIMIT = 100


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path, allow_dash=True))
@delivery_options
@click.option(
    "--to-topic",
    "topic",
    metavar="TOPIC",
    help="Publish each event to this Pub/Sub topic (projects/P/topics/T) as the message that "
    "carries it, so it travels the real delivery path (subscription, push, retries).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Re-run units already COMPLETED or FAILED. Over HTTP this sends X-Ingest-Force: 1, "
    "which the service honours only with INGEST_ALLOW_FORCE=true (otherwise it answers 403).",
)
@dry_run_option("Decode each event and show what would run; run nothing.")
@click.option(
    "--retries",
    type=click.IntRange(*REPLAY_RETRIES),
    help="Rounds of re-sending events answered busy or transient (waits 1, 2, 4... s; "
    "default: INGEST_REPLAY_RETRIES, else 3).",
)
@json_option("Print one JSON line per event, no table.")
def replay(
    *,
    paths: tuple[Path, ...],
    url: str | None,
    in_process: bool,
    topic: str | None,
    concurrency: int | None,
    force: bool,
    dry_run: bool,
    headers: dict[str, str],
    timeout: float,
    retries: int | None,
    as_json: bool,
) -> None:
    """Replay recorded events from PATHS: files, folders, or - for stdin.

    A file holds one JSON event or many (JSONL, or one after another): structured CloudEvents,
    Pub/Sub push envelopes, or recorded requests (what INGEST_RECORD_DIR writes, and what
    `ingest event` prints). Folders are read for *.json, *.jsonl and *.ndjson files.

    Exits non-zero when any event did not end loaded, duplicate or ignored.

    \b
    Examples:
      ingest replay examples/events --in-process
      ingest replay recorded/ --to http://127.0.0.1:8080/ -c 8
      ingest event storage --bucket landing --name orders/a.csv | ingest replay - --in-process
    """
    settings = load_settings(replay_concurrency=concurrency, replay_retries=retries)
    others = {"--in-process": in_process, "--to-topic TOPIC": bool(topic)}
    url = destination_url(url, settings, others, dry_run=dry_run)
    requests = _load(paths)
    if topic:
        from service.cli.replay_to_topic import replay_to_topic

        replay_to_topic(
            settings,
            topic,
            requests,
            concurrency=settings.replay_concurrency,
            force=force,
            dry_run=dry_run,
            as_json=as_json,
        )
        return
    # Imported here: the decoders and the HTTP client are not needed for `ingest --help`.
    from service.replay.delivery import Sending
    from service.replay.dry_run import dry_run as plan_each
    from service.replay.rounds import with_retries

    started = time.perf_counter()
    if dry_run:
        results = plan_each(load_pipelines(settings), requests)
    else:
        if url:
            sending = Sending(settings.replay_concurrency, force, headers, timeout)
        else:
            sending = Sending(settings.replay_concurrency, force)
            load_pipelines(settings)  # a broken pipelines file is one line, before anything runs
            require_data(settings)

        def run(batch: list[RecordedRequest]) -> list[Result]:
            return _send(url, settings, batch, sending)

        results = with_retries(run, requests, settings.replay_retries, _announce_retry)
    _report(results, time.perf_counter() - started, as_json=as_json, dry=dry_run)


def _send(
    url: str | None, settings: Settings, requests: list[RecordedRequest], sending: Sending
) -> list[Result]:
    """One round: to the service at ``url``, or in-process through the app."""
    from service.replay import delivery

    with _progress(len(requests)) as tick:
        try:
            if url:
                return asyncio.run(delivery.over_http(url, requests, sending, tick))
            return run_async(lambda: delivery.in_process(settings, requests, sending, tick))
        except delivery.Unreachable as exc:
            raise click.ClickException(str(exc)) from exc


def _announce_retry(count: int, delay: float) -> None:
    err_console.print(f"retrying {count} busy or unavailable events in {delay:g} s")


def _load(paths: tuple[Path, ...]) -> list[RecordedRequest]:
    requests: list[RecordedRequest] = []
    for path in paths:
        try:
            if str(path) == "-":
                found = parse_requests(sys.stdin.read(), "<stdin>")
            elif not path.exists():
                raise click.ClickException(f"{path}: no such file or folder")
            else:
                found = load_requests(path)
        except IngestError as exc:
            raise click.ClickException(str(exc)) from exc
        if not found:
            raise click.ClickException(f"{path}: no events found (*.json, *.jsonl, *.ndjson)")
        requests.extend(found)
    return requests


@contextlib.contextmanager
def _progress(total: int) -> Iterator[Callable[[], None]]:
    """A progress bar on stderr for runs of more than one event on a terminal."""
    progress = Progress(
        TextColumn("replaying"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=total < 2 or not err_console.is_terminal,
    )
    with progress:
        task = progress.add_task("replay", total=total)
        yield lambda: progress.advance(task)


def _report(results: list[Result], seconds: float, *, as_json: bool, dry: bool) -> None:
    if as_json:
        for r in results:
            line = {"source": r.source, "http_status": r.http_status, **r.body}
            click.echo(json.dumps({**line, "seconds": round(r.seconds, 4)}, ensure_ascii=False))
    else:
        _table(results, dry=dry)
    failed = [r for r in results if not r.ok]
    out = err_console if as_json else console
    out.print(_summary(results, seconds), markup=False, highlight=False)
    if failed:
        raise click.ClickException(f"{len(failed)} of {len(results)} events did not succeed")


def _table(results: list[Result], *, dry: bool) -> None:
    shown = results if len(results) <= TABLE_LIMIT else [r for r in results if not r.ok]
    if not shown:
        return  # a long run where every event succeeded: the summary says it all
    title = "replay (dry run: nothing was run)" if dry else "replay"
    if len(shown) < len(results):
        title += f": the {len(shown)} of {len(results)} events that did not succeed"
    if dry:
        t = table(title, ["event", "id", "shape", ("plan", "nowrap"), "units / reason"])
        for r in shown:
            t.add_row(
                cell(source_label(r.source)),
                cell(r.body.get("event_id")),
                cell(r.body.get("shape")),
                outcome(r.status),
                cell(r.body.get("reason")),
            )
    else:
        t = table(
            title,
            [
                "event",
                "id",
                ("HTTP", "right"),
                ("outcome", "nowrap"),
                "units",
                ("loaded", "right"),
                ("quarantined", "right"),
                ("ms", "right"),
                "reason",
            ],
        )
        for r in shown:
            t.add_row(
                cell(source_label(r.source)),
                cell(r.body.get("event_id")),
                cell(r.http_status or "-"),
                outcome(r.status),
                cell(_units(r)),
                number(r.body.get("rows_loaded")),
                number(r.body.get("rows_quarantined")),
                number(round(r.seconds * 1000, 1)),
                cell(r.body.get("reason")),
            )
    console.print(t)


def _units(result: Result) -> str:
    """How many units the event made; their outcomes too when they differ from the event's."""
    units = result.body.get("units")
    if not isinstance(units, dict) or not units:
        return ""
    if list(units) == [result.status]:
        return str(units[result.status])
    return ", ".join(f"{n} {status}" for status, n in units.items())


def _summary(results: list[Result], seconds: float) -> str:
    counts = Counter(r.status for r in results)
    parts = ", ".join(f"{n} {status}" for status, n in counts.most_common())
    events = "event" if len(results) == 1 else "events"
    rows = rows_line(r.body for r in results)
    return f"{len(results)} {events} in {seconds:.2f} s: {parts}; {rows}"
