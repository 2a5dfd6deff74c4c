"""``ingest peek TABLE``: some rows of a warehouse table, optionally filtered."""

from __future__ import annotations

import click

from service.cli import main
from service.cli.common import console, load_settings, open_backends, print_json, run_async
from service.cli.render import cell, table
from service.models import RowFilter, Rows
from service.peek import MAX_PEEK_ROWS, parse_filter


def _filters(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> list[RowFilter]:
    try:
        return [parse_filter(v) for v in values]
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from exc


@main.command()
@click.argument("table_name", metavar="TABLE")
@click.option(
    "--limit",
    type=click.IntRange(1, MAX_PEEK_ROWS),
    default=20,
    show_default=True,
    help="Rows to show at most.",
)
@click.option(
    "--where",
    "where",
    multiple=True,
    callback=_filters,
    metavar="'COLUMN OP VALUE'",
    help="Only rows where COLUMN compares so to VALUE (OP: = != < <= > >=); repeat to AND.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON objects.")
def peek(table_name: str, limit: int, where: list[RowFilter], as_json: bool) -> None:
    """Show some rows of TABLE (DATASET.TABLE) in the warehouse, DuckDB or BigQuery.

    --where takes a column of the table, a comparison and a value, e.g. --where 'amount>100'
    --where country=FR. The value is sent as a query parameter cast to the column's type, never
    as SQL. Without --where, BigQuery lists rows for free; with it, a query runs (capped at 1 GB
    billed).
    """

    async def read() -> Rows:
        async with open_backends(load_settings()) as backends:
            return await backends.warehouse.peek(table_name, limit, where)

    found = run_async(read)
    if as_json:
        print_json([dict(zip(found.columns, row, strict=True)) for row in found.rows])
        return
    shown = table(f"{table_name}: {len(found.rows)} rows", found.columns)
    for row in found.rows:
        shown.add_row(*(cell(value) for value in row))
    console.print(shown)
