"""``ingest check-config``: validate the settings and the pipelines file, and show them."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

import click

from service.cli import main
from service.cli.backend_checks import Check, check_backends
from service.cli.common import console, load_pipelines, load_settings, print_json, run_async
from service.cli.render import cell, table
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
    is invalid; otherwise shows the settings that differ from their defaults and the pipelines.
    With --all it also tries the credentials (gcp) and each backend, one line each, and exits
    non-zero when any fails.
    """
    settings = load_settings()
    pipelines = load_pipelines(settings)
    rows = _settings_rows(settings, show_all=show_all)
    checks = run_async(lambda: check_backends(settings)) if show_all else []
    if as_json:
        print_json(
            {
                "settings": {name: value for name, value, _ in rows},
                "pipelines": [
                    {
                        "name": p.name,
                        "source": f"gs://{p.bucket}/{p.prefix}",
                        "glob": p.glob,
                        "format": p.format,
                        "table": p.table.name,
                        "columns": len(p.table.columns),
                        "transforms": len(p.transforms),
                    }
                    for p in pipelines.pipelines
                ],
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
        ["name", "source", "format", "table", ("columns", "right"), "bad rows"],
    )
    for p in pipelines.pipelines:
        policy = p.bad_rows
        limits = [
            f"max {policy.max_count}" if policy.max_count is not None else "",
            f"ratio {policy.max_ratio:g}" if policy.max_ratio is not None else "",
        ]
        listed.add_row(
            cell(p.name),
            cell(f"gs://{p.bucket}/{p.prefix}{p.glob or ''}"),
            cell(p.format),
            cell(p.table.name),
            cell(len(p.table.columns)),
            cell(", ".join(x for x in limits if x)),
        )
    console.print(listed)
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
