"""``ingest deploy plan``: the gcloud commands a deployment file (eventarc.yaml) implies."""

from __future__ import annotations

import json
from pathlib import Path

import click

from service.cli import main
from service.errors import ConfigError


@main.group()
def deploy() -> None:
    """Deploying to Google Cloud (docs/deploy.md)."""


@deploy.command("plan")
@click.argument(
    "deployment_file",
    default="eventarc.yaml",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@click.option("--json", "as_json", is_flag=True, help="Print the commands as JSON argv lists.")
def plan_command(deployment_file: Path, as_json: bool) -> None:
    """Print the commands DEPLOYMENT_FILE implies, in order, as a bash script.

    Nothing is run: review the script, then run it (or its steps) with gcloud signed in.
    """
    from service.deploy.deployment_file import load_deployment
    from service.deploy.plan import plan
    from service.deploy.script import render

    try:
        commands = plan(load_deployment(deployment_file))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        rows = [{"step": c.step, "argv": list(c.argv), "capture": c.capture} for c in commands]
        click.echo(json.dumps(rows, indent=2))
    else:
        click.echo(render(commands), nl=False)
