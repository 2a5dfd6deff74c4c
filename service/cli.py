"""The operator's command line: ``ingest serve``, ``ingest replay`` and friends."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import click
import httpx
from rich.console import Console
from rich.table import Table

from service.errors import ConfigError, IngestError
from service.recording import RecordedRequest, load_requests
from service.settings import Settings, replace_settings

console = Console()


def _settings(**overrides: Any) -> Settings:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    changes = {k: v for k, v in overrides.items() if v is not None}
    return replace_settings(settings, **changes) if changes else settings


@click.group()
def main() -> None:
    """Event-driven ingestion: Cloud Storage files into BigQuery, exactly once."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, envvar="INGEST_HOST")
@click.option("--port", default=8080, show_default=True, type=int, envvar="PORT")
@click.option("--embedded", "backend", flag_value="embedded", help="Use the local backends.")
@click.option("--gcp", "backend", flag_value="gcp", help="Use Google Cloud.")
def serve(host: str, port: int, backend: str | None) -> None:
    """Serve POST / under Hypercorn."""
    from service.serve import run

    settings = _settings(backend=backend)
    try:
        run(settings, host, port)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


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
        results = asyncio.run(_replay_in_process(_settings(), requests))
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


@main.command()
def tables() -> None:
    """Show every table in the warehouse with its row count."""
    from service.wiring import build_backends

    async def show() -> list[tuple[str, int]]:
        backends = build_backends(_settings())
        try:
            return await backends.warehouse.tables()
        finally:
            await backends.close()

    rows = asyncio.run(show())
    table = Table(title="warehouse")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, count in rows:
        table.add_row(name, str(count))
    console.print(table)


@main.command()
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("destination")
def upload(source: Path, destination: str) -> None:
    """Put a local file into the configured object store at gs://BUCKET/NAME."""
    if not destination.startswith("gs://") or "/" not in destination[5:]:
        raise click.UsageError("DESTINATION must be gs://BUCKET/NAME")
    bucket, name = destination[5:].split("/", 1)
    from service.models import ObjectRef
    from service.wiring import build_backends

    data = source.read_bytes()

    async def put() -> ObjectRef:
        backends = build_backends(_settings())
        try:
            ref = ObjectRef(bucket, name)
            return await backends.store.write(ref, data, _content_type(source))
        finally:
            await backends.close()

    ref = asyncio.run(put())
    console.print(f"{ref.uri} generation {ref.generation}")


def _content_type(path: Path) -> str:
    # Types by extension for the sample formats; anything else is plain bytes.
    known = {".csv": "text/csv", ".json": "application/json", ".parquet": "application/parquet"}
    return known.get(path.suffix, "application/octet-stream")


@main.command("check-config")
def check_config() -> None:
    """Validate the settings and the pipelines file."""
    from service.wiring import load_config

    settings = _settings()
    try:
        pipelines = load_config(settings)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    console.print(f"settings ok (backend {settings.backend})")
    for p in pipelines.pipelines:
        console.print(f"pipeline {p.name}: gs://{p.bucket}/{p.prefix} -> {p.table.name}")
    console.print(json.dumps({"pipelines": len(pipelines.pipelines)}))


if __name__ == "__main__":
    main()
