"""``ingest schema infer FILE``: a BigQuery JSON schema for a pipeline, from a sample file."""

from __future__ import annotations

import json
from pathlib import Path

import click

from service.cli import main
from service.cli.common import err_console
from service.errors import IngestError
from service.schema_infer import DEFAULT_SAMPLE_BYTES, file_format, infer


@main.group()
def schema() -> None:
    """Table schemas for pipelines."""


@schema.command(name="infer")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "ndjson", "parquet"]),
    help="The file's format (default: from its name).",
)
@click.option("--delimiter", default=",", show_default=True, help="CSV field delimiter.")
@click.option(
    "--sample-bytes",
    type=click.IntRange(min=1024),
    default=DEFAULT_SAMPLE_BYTES,
    show_default=True,
    help="Bytes of a CSV or NDJSON file to infer from.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the schema here instead of printing it.",
)
def infer_command(
    file: Path, fmt: str | None, delimiter: str, sample_bytes: int, output: Path | None
) -> None:
    """Print a BigQuery JSON schema inferred from FILE (CSV, NDJSON or Parquet, .gz too).

    Every column comes out NULLABLE (a sample cannot prove a column is never empty): mark the
    ones that must be filled REQUIRED. A pipeline's `schema` names the file this writes.
    """
    try:
        found = infer(file, file_format(file, fmt), delimiter=delimiter, sample_bytes=sample_bytes)
    except IngestError as exc:
        raise click.ClickException(str(exc)) from exc
    text = "[\n" + ",\n".join(f"  {json.dumps(f)}" for f in found.fields) + "\n]\n"
    if output:
        output.write_text(text, encoding="utf-8")
        err_console.print(f"wrote {len(found.fields)} columns to {output}", highlight=False)
    else:
        click.echo(text, nl=False)
    sampled = f" from {found.rows:,} sample rows" if found.rows is not None else ""
    err_console.print(f"{len(found.fields)} columns{sampled}, all NULLABLE", highlight=False)
    notes = (
        (found.nested, "nested fields ({}): pipelines cannot load them yet"),
        (found.bad_names, "names BigQuery refuses ({}): rename them in the pipeline"),
    )
    for names, note in notes:
        if names:
            line = note.format(", ".join(names))
            err_console.print(line, style="yellow", highlight=False, markup=False)
