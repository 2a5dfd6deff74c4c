"""``ingest check-config``: validate the settings and the pipelines file."""

from __future__ import annotations

import json

import click

from service.cli import main
from service.cli.common import console, load_settings
from service.errors import ConfigError


@main.command("check-config")
def check_config() -> None:
    """Validate the settings and the pipelines file."""
    from service.wiring import load_config

    settings = load_settings()
    try:
        pipelines = load_config(settings)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    console.print(f"settings ok (backend {settings.backend})")
    for p in pipelines.pipelines:
        console.print(f"pipeline {p.name}: gs://{p.bucket}/{p.prefix} -> {p.table.name}")
    console.print(json.dumps({"pipelines": len(pipelines.pipelines)}))
