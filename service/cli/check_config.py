"""``ingest check-config``: validate the settings and the pipelines file, and show them."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

import click

from service.cli import main
from service.cli.backend_checks import Check, check_backends
from service.cli.common import console, load_pipelines, load_settings, print_json, run_async
from service.cli.render import cell, table
from service.pipeline.definition import BadRowPolicy, Pipeline
from service.pipeline.overlaps import overlaps
from service.settings import Settings


@main.command("check-config")
@click.option(
    "--all",
    "show_all",
    is_flag=True,
    help="List every setting, and try the credentials and each backend the settings use.",
)
@click.option("--json", "as_json", is_flag=True, help="Print settings and pipelines as JSON.")
def check_config(show_all: bool, as_json: bool) -> None:
    """Validate the settings (INGEST_* variables) and the pipelines file (INGEST_PIPELINES).

    Exits non-zero, with one line naming the variable, file, pipeline or field, when anything
    is invalid; otherwise shows the settings that differ from their defaults, the pipelines and
    how each loads (partitioning, clustering, write mode, the bad-row thresholds in effect,
    format and compression, the sweep window), and warns of pipelines matching the same files.
    With --all it also tries the credentials (gcp) and each backend, one line each, and exits
    non-zero when any fails.
    """
    settings = load_settings()
    pipelines = load_pipelines(settings)
    rows = _settings_rows(settings, show_all=show_all)
    warnings = [o.describe() for o in overlaps(pipelines.pipelines)]
    checks = run_async(lambda: check_backends(settings)) if show_all else []
    if as_json:
        print_json(
            {
                "settings": {name: value for name, value, _ in rows},
                "pipelines": [_pipeline_json(p) for p in pipelines.pipelines],
                "warnings": warnings,
            }
            | ({"checks": [asdict(c) for c in checks]} if show_all else {})
        )
        _fail_on(checks)
        return
    shown = table(
        "settings" if show_all else "settings (set, not default)", ["variable", "value", "meaning"]
    )
    for name, value, doc in rows:
        shown.add_row(cell(name), cell(value), cell(doc))
    console.print(shown)
    listed = table(
        f"pipelines ({pipelines.source or settings.pipelines_file})",
        ["name", "source", "format", "table", ("columns", "right"), "quarantine"],
    )
    loading = table(
        "how each pipeline loads",
        ["name", "partitioning", "clustering", "write mode", "rejects a file", "sweeps"],
    )
    for p in pipelines.pipelines:
        listed.add_row(
            cell(p.name),
            cell(f"gs://{p.bucket}/{p.prefix}{p.glob or ''}"),
            cell(f"{p.format}, compression {p.compression}"),
            cell(p.table.name),
            cell(len(p.table.columns)),
            cell(f"gs://{'/'.join(p.quarantine_location)}"),
        )
        loading.add_row(
            cell(p.name),
            cell(_partitioning(p)),
            cell(", ".join(p.table.clustering) or "none"),
            cell(_write_mode(p)),
            cell(_thresholds(p.bad_rows)),
            cell(_sweep(p)),
        )
    console.print(listed)
    console.print(loading)
    for warning in warnings:
        console.print(f"warning: {warning}", markup=False, highlight=False)
    for c in checks:
        mark = "ok  " if c.ok else "FAIL"
        click.echo(f"{mark} {c.name}: {c.detail}")
    _fail_on(checks)
    count = len(pipelines.pipelines)
    console.print(
        f"ok: settings valid (backend {settings.backend}), {count} pipelines",
        markup=False,
        highlight=False,
    )


def _pipeline_json(p: Pipeline) -> dict[str, Any]:
    bucket, prefix = p.quarantine_location
    return {
        "name": p.name,
        "source": f"gs://{p.bucket}/{p.prefix}",
        "glob": p.glob,
        "format": p.format,
        "compression": p.compression,
        "table": p.table.name,
        "columns": len(p.table.columns),
        "lineage": p.lineage,
        "transforms": len(p.transforms),
        "partitioning": (
            {"field": p.table.partition_field, "granularity": "DAY"}
            if p.table.partition_field
            else None
        ),
        "clustering": list(p.table.clustering),
        "write_mode": p.write_mode,
        "load": p.load,
        "partition_date": p.partition_date if p.write_mode == "replace_partition" else None,
        "bad_rows": {
            "max_count": p.bad_rows.max_count,
            "max_ratio": p.bad_rows.max_ratio,
            "quarantine": f"gs://{bucket}/{prefix}",
        },
        "sweep": {"lookback_days": p.sweep_lookback_days, "dated_prefix": "{date}" in p.prefix},
    }


def _partitioning(p: Pipeline) -> str:
    field = p.table.partition_field
    return "none" if field is None else f"daily by {field}"


def _write_mode(p: Pipeline) -> str:
    if p.write_mode == "append":
        return "append"
    return f"replace the day's partition (date from the {p.partition_date})"


def _thresholds(policy: BadRowPolicy) -> str:
    """When bad rows reject the whole file, as ``BadRowPolicy.exceeded`` applies the policy."""
    if policy.max_count == 0 or policy.max_ratio == 0:
        return "at the first bad row"
    limits = []
    if policy.max_count is not None:
        limits.append(f"over {policy.max_count} bad rows")
    if policy.max_ratio is not None:
        limits.append(f"over {policy.max_ratio * 100:g}% of its rows bad")
    return " or ".join(limits)


def _sweep(p: Pipeline) -> str:
    window = f"undated: files of the last {p.sweep_lookback_days} days"
    if "{date}" in p.prefix:
        return f"{window}; dated: gs://{p.bucket}/{p.prefix}"
    return window


def _fail_on(checks: list[Check]) -> None:
    failed = [c.name for c in checks if not c.ok]
    if failed:
        raise click.ClickException(f"{len(failed)} check(s) failed: {', '.join(failed)}")


def _settings_rows(settings: Settings, *, show_all: bool) -> list[tuple[str, Any, str]]:
    rows = []
    for spec in fields(Settings):
        value = getattr(settings, spec.name)
        if show_all or value != spec.default:
            shown = ",".join(value) if isinstance(value, tuple) else value
            rows.append(
                (
                    spec.metadata["env"],
                    str(shown) if shown is not None else "",
                    spec.metadata["doc"],
                )
            )
    return rows
