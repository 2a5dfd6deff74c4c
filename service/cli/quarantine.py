"""``ingest quarantine KEY``: a unit's bad rows grouped by reason, and why its file failed."""

from __future__ import annotations

import click

from service.cli import main
from service.cli.common import console, load_settings, open_backends, print_json, run_async
from service.cli.render import cell, number, table
from service.models import ObjectRef
from service.quarantine_view import QuarantineReport, summarize

# Bytes read from the store at a time.
CHUNK_BYTES = 1024 * 1024


@main.command()
@click.argument("key")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def quarantine(key: str, as_json: bool) -> None:
    """Show the bad rows of a unit, grouped by reason, with counts and samples.

    KEY is a ledger key (or a unique start of one), a unit as `ingest ledger list` prints it
    (PIPELINE:gs://BUCKET/NAME#GEN), or the gs:// URI of a quarantine object. The layout of
    the object is in docs/quarantine.md.
    """
    from service.cli.ledger import find

    async def read() -> tuple[QuarantineReport | None, str | None]:
        async with open_backends(load_settings()) as backends:
            error = None
            if key.startswith("gs://"):
                uri: str | None = key
            else:
                record = await find(backends.ledger_store, key)
                uri = record.result.quarantine_uri if record.result else None
                error = record.error
            if uri is None:
                return None, error
            bucket, _, name = uri.removeprefix("gs://").partition("/")
            data = b"".join(
                [c async for c in backends.store.read(ObjectRef(bucket, name), CHUNK_BYTES)]
            )
            return summarize(uri, data.split(b"\n")), error

    report, error = run_async(read)
    if as_json:
        print_json((report.as_json() if report else {"uri": None}) | {"error": error})
        return
    if report is None:
        why = f"; it failed: {error}" if error else ""
        console.print(f"no quarantine for {key} (no bad row){why}", markup=False, highlight=False)
        return
    _show(report, error)


def _show(report: QuarantineReport, error: str | None) -> None:
    console.print(report.uri, markup=False, highlight=False)
    if report.file_reason or error:
        reason = report.file_reason or error
        console.print(f"file rejected: {reason}", markup=False, highlight=False, style="red")
    if not report.groups:
        console.print("no bad rows", highlight=False)
        return
    t = table(
        f"{report.bad_rows:,} bad rows by reason",
        [("rows", "right"), "reason", ("row", "right"), "sample"],
    )
    for group in report.groups:
        for index, sample in enumerate(group.samples):
            first = index == 0
            t.add_row(
                number(group.count) if first else cell(""),
                cell(group.kind) if first else cell(""),
                number(sample.row),
                cell(sample.raw),
            )
    console.print(t)
