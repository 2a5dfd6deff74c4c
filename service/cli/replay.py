"""``ingest replay``: recorded events against a running service or in-process."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import click
import httpx
from rich.table import Table

from service.cli import main
from service.cli.common import console, load_settings
from service.errors import ConfigError, IngestError
from service.recording import RecordedRequest, load_requests
from service.settings import Settings


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--to", "url", help="POST to a running service at this URL.")
@click.option("--in-process", is_flag=True, help="Run the events here, without a server.")
def replay(paths: tuple[Path, ...], url: str | None, in_process: bool) -> None:
    """Replay recorded events (files, folders, JSONL)."""
    if bool(url) == in_process:
        raise click.UsageError("give exactly one of --to URL or --in-process")
    requests: list[RecordedRequest] = []
    for path in paths:
        if not path.exists():
            raise click.ClickException(f"{path}: no such file or folder")
        try:
            requests.extend(load_requests(path))
        except (ValueError, IngestError) as exc:
            raise click.ClickException(f"{path}: {exc}") from exc
    if url:
        results = asyncio.run(_replay_http(url, requests))
    else:
        results = asyncio.run(_replay_in_process(load_settings(), requests))
    _print_results(results)
    if any(status >= 400 and status != 429 for _, status, _ in results):
        sys.exit(1)


async def _replay_http(
    url: str, requests: list[RecordedRequest]
) -> list[tuple[str, int, dict[str, Any]]]:
    results = []
    async with httpx.AsyncClient(timeout=600) as client:
        for req in requests:
            try:
                response = await client.post(url, headers=req.headers, content=req.body)
            except httpx.HTTPError as exc:
                raise click.ClickException(f"{url}: {type(exc).__name__}: {exc}") from exc
            results.append((req.source, response.status_code, _json_or_text(response)))
    return results


async def _replay_in_process(
    settings: Settings, requests: list[RecordedRequest]
) -> list[tuple[str, int, dict[str, Any]]]:
    from service.app import create_app

    try:
        app = create_app(settings)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    results = []
    async with app.test_app() as test_app:
        client = test_app.test_client()
        for req in requests:
            response = await client.post("/", headers=req.headers, data=req.body)
            body = await response.get_json()
            results.append((req.source, response.status_code, body or {}))
    return results


def _json_or_text(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {"text": response.text[:200]}
    return data if isinstance(data, dict) else {"value": data}


def _print_results(results: list[tuple[str, int, dict[str, Any]]]) -> None:
    table = Table(title="replay")
    for column in ("event", "HTTP", "status", "rows loaded", "quarantined", "reason"):
        table.add_column(column)
    for source, status, body in results:
        table.add_row(
            Path(source.split(":")[0]).name,
            str(status),
            str(body.get("status", "")),
            str(body.get("rows_loaded", "")),
            str(body.get("rows_quarantined", "")),
            str(body.get("reason", "")),
        )
    console.print(table)
