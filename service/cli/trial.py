"""``ingest try FILE --pipeline NAME``: a local file through a pipeline, nothing written."""

from __future__ import annotations

from pathlib import Path

import click

from service.cli import main
from service.cli.common import (
    console,
    load_pipelines,
    load_settings,
    pipeline_named,
    print_json,
    run_async,
)
from service.cli.options import bounded, json_option
from service.cli.render import cell, number, table
from service.models import ObjectRef
from service.trial import GENERATION, Trial, object_name, try_file


@main.command(name="try")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--pipeline", "pipeline_name", required=True, help="The pipeline to run it through.")
@click.option(
    "--name",
    help="The object name the file stands as (default: its file name under the pipeline's "
    "prefix); transforms and partitions that read the name see it.",
)
@bounded("--rows", low=0, high=1000, default=5, help="First rows to show, as they would be loaded.")
@json_option("Print the trial as JSON.")
def try_(file: Path, pipeline_name: str, name: str | None, rows: int, as_json: bool) -> None:
    """Run FILE through a pipeline exactly as a unit would: parse, validate, transform.

    Prints the counts, the bad rows by reason, the verdict, and the first rows as they would
    be loaded. Nothing is written: no table, no quarantine, no ledger. Exits 1 when the file
    would be rejected.
    """
    from service.wiring import trial_ports

    settings = load_settings()
    pipelines = load_pipelines(settings)
    pipeline = pipeline_named(pipelines, pipeline_name)
    ref = ObjectRef(pipeline.bucket, object_name(pipeline, file, name), GENERATION)
    store, warehouse = trial_ports(file, ref, rows)
    trial = run_async(lambda: try_file(pipeline, store, warehouse))
    if as_json:
        print_json(_json(trial))
    else:
        _show(trial)
    if trial.rejected:
        raise click.ClickException("the file would be rejected")


def _json(trial: Trial) -> dict[str, object]:
    r = trial.result
    return {
        "unit": trial.unit,
        "verdict": "rejected" if trial.rejected else "loaded",
        "reason": trial.rejected,
        "rows_read": r.rows_read,
        "rows_loaded": r.rows_loaded,
        "rows_quarantined": r.rows_quarantined,
        "rows_rejected": r.rows_rejected,
        "bad_rows": trial.bad_rows.as_json()["reasons"] if trial.bad_rows else [],
        "first_rows": [
            dict(zip(trial.first_rows.columns, row, strict=True)) for row in trial.first_rows.rows
        ],
    }


def _show(trial: Trial) -> None:
    r = trial.result
    verdict = f"would be REJECTED: {trial.rejected}" if trial.rejected else "would load"
    console.print(
        f"{trial.unit}: {verdict}",
        markup=False,
        highlight=False,
        style="red" if trial.rejected else "green",
    )
    counts = (
        f"rows read {r.rows_read:,}: would load {r.rows_loaded:,},"
        f" quarantine {r.rows_quarantined:,}, reject {r.rows_rejected:,}"
    )
    console.print(f"{counts} (nothing was written)", highlight=False)
    if trial.bad_rows and trial.bad_rows.groups:
        t = table("bad rows by reason", [("rows", "right"), "reason", ("row", "right"), "sample"])
        for group in trial.bad_rows.groups:
            sample = group.samples[0]
            t.add_row(number(group.count), cell(group.kind), number(sample.row), cell(sample.raw))
        console.print(t)
    if trial.first_rows.rows:
        t = table(f"first {len(trial.first_rows.rows)} rows as loaded", trial.first_rows.columns)
        for row in trial.first_rows.rows:
            t.add_row(*(cell(v) for v in row))
        console.print(t)
