"""``ingest replay --to-topic``: publish recorded events to a topic, report, judge the run."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import TYPE_CHECKING

import click

from service.cli.common import console, err_console, run_async
from service.cli.render import cell, source_label, table
from service.errors import ConfigError
from service.replay.publishing import Publication, Published, outgoing, publish_all

if TYPE_CHECKING:
    from service.recording import RecordedRequest
    from service.settings import Settings

# Colour of each result in the table.
STYLES = {
    Publication.PUBLISHED: "green",
    Publication.WOULD_PUBLISH: "green",
    Publication.SKIPPED: "dim",
}


def replay_to_topic(
    settings: Settings,
    topic: str,
    requests: list[RecordedRequest],
    *,
    concurrency: int,
    force: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """``ingest replay --to-topic``: publish, report, exit non-zero when any event failed."""
    from service.wiring import open_topic

    if force:
        raise click.UsageError("--force cannot travel through a topic: replay --to URL instead")

    items = [outgoing(r) for r in requests]
    started = time.perf_counter()
    if dry_run:
        results = [Published(item, dry=True) for item in items]
    else:
        try:
            sink = open_topic(settings, topic)
        except ConfigError as exc:
            raise click.BadParameter(str(exc), param_hint="--to-topic") from exc

        async def publish() -> list[Published]:
            try:
                return await publish_all(sink, items, concurrency)
            finally:
                await sink.close()

        results = run_async(publish)
    _report(topic, results, time.perf_counter() - started, as_json=as_json)


def _report(topic: str, results: list[Published], seconds: float, *, as_json: bool) -> None:
    if as_json:
        for r in results:
            line = {
                "source": r.item.source,
                "event_id": r.item.event_id,
                "status": r.status,
                "message_id": r.message_id,
                "attributes": r.item.attributes,
                "reason": r.reason,
            }
            click.echo(json.dumps(line, ensure_ascii=False))
    else:
        t = table(f"replay to {topic}", ["event", "id", "outcome", "message id", "reason"])
        for r in results:
            t.add_row(
                cell(source_label(r.item.source)),
                cell(r.item.event_id),
                cell(r.status, STYLES.get(r.status, "bold red")),
                cell(r.message_id),
                cell(r.reason),
            )
        console.print(t)
    counts = Counter(r.status for r in results)
    parts = ", ".join(f"{n} {status}" for status, n in counts.most_common())
    (err_console if as_json else console).print(
        f"{len(results)} events in {seconds:.2f} s: {parts}", highlight=False
    )
    failed = counts.get(Publication.ERROR, 0)
    if failed:
        raise click.ClickException(f"{failed} of {len(results)} events could not be published")
