"""``ingest tables``: every table in the warehouse with its row count."""

from __future__ import annotations

import click
from rich.table import Table

from service.cli import main
from service.cli.common import console, load_settings, open_backends, print_json, run_async


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the tables as JSON.")
def tables(as_json: bool) -> None:
    """Show every table in the warehouse with its row count."""

    async def show() -> list[tuple[str, int]]:
        async with open_backends(load_settings()) as backends:
            return await backends.warehouse.tables()

    rows = run_async(show)
    if as_json:
        print_json([{"table": name, "rows": count} for name, count in rows])
        return
    table = Table(title="warehouse")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, count in rows:
        table.add_row(name, str(count))
    console.print(table)
