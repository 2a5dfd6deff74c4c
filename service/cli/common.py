"""What every command shares: consoles, settings with flag overrides, backends for a while."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.console import Console

from service.errors import ConfigError, IngestError
from service.settings import Settings, replace_settings

if TYPE_CHECKING:
    from service.ingest import Ingestor
    from service.pipeline.definition import Pipeline, PipelineSet
    from service.wiring import Backends

T = TypeVar("T")

# Tables fit a terminal; piped or captured output gets room for paths instead of 80 columns.
PIPED_WIDTH = 140

console = Console()
# Progress and notes go to stderr so stdout stays clean for JSON that is piped on.
err_console = Console(stderr=True)
for _console in (console, err_console):
    if not _console.is_terminal:
        _console.width = max(_console.width, PIPED_WIDTH)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with the flags that were given laid over them."""
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    changes = {k: v for k, v in overrides.items() if v is not None}
    if not changes:
        return settings
    settings = replace_settings(settings, **changes)
    try:
        settings.validate()  # a flag (--gcp) may make the combination invalid
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    return settings


def load_pipelines(settings: Settings) -> PipelineSet:
    from service.wiring import load_config

    try:
        return load_config(settings)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def require_data(settings: Settings) -> None:
    """On the embedded backend: stop with one line saying where it looked, when no data folder
    is there (a command run from another folder would otherwise make an empty one)."""
    from service.wiring import require_data_dir

    if settings.backend == "embedded":
        try:
            require_data_dir(settings)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from exc


def run_async(work: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine; the project's own errors become one clear line, not a traceback."""
    try:
        return asyncio.run(_call(work))
    except ConfigError as exc:  # says what to set or fix: the type name adds nothing
        raise click.ClickException(str(exc)) from exc
    except IngestError as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc


async def _call(work: Callable[[], Awaitable[T]]) -> T:
    return await work()


@contextlib.asynccontextmanager
async def open_backends(settings: Settings, *, writes: bool = False) -> AsyncIterator[Backends]:
    """The backends for one command; on the embedded backend the data folder must exist unless
    the command ``writes`` new data (upload): run elsewhere, a command says where it looked."""
    from service.wiring import build_backends

    if not writes:
        require_data(settings)
    backends = build_backends(settings)
    try:
        yield backends
    finally:
        await backends.close()


@contextlib.asynccontextmanager
async def open_ingestor(settings: Settings, pipelines: PipelineSet) -> AsyncIterator[Ingestor]:
    """The same ingestor the server runs, for in-process work (replay, sweep, retry)."""
    from service.wiring import build_ingestor

    async with open_backends(settings) as backends:
        yield build_ingestor(settings, backends, pipelines)


def parse_since(raw: str | None, now: datetime | None = None) -> datetime | None:
    """``--since``: an ISO 8601 instant (UTC when no offset) or an age such as 30m, 2h, 7d."""
    from service.status_view import parse_instant

    if raw is None:
        return None
    try:
        return parse_instant(raw, now)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from exc


def print_json(value: Any) -> None:
    """JSON on stdout, plain (no colour codes), for scripts and pipes."""
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def destination_url(
    url: str | None, settings: Settings, others: Mapping[str, bool], *, dry_run: bool
) -> str | None:
    """Where replayed events are POSTed: --to URL; without it INGEST_REPLAY_URL, unless another
    destination was chosen (``others``: each other destination's flag, and whether it was
    given). Exactly one destination, unless it is a dry run (which sends nothing)."""
    url = url if url or any(others.values()) else settings.replay_url
    if not dry_run and bool(url) + sum(others.values()) != 1:
        *first, last = ["--to URL", *others]
        raise click.UsageError(f"give exactly one of {', '.join(first)} or {last} (or --dry-run)")
    if url and not url.startswith(("http://", "https://")):
        raise click.BadParameter(f"{url!r} is not an http(s) URL", param_hint="--to")
    return url


def pipeline_named(pipelines: PipelineSet, name: str) -> Pipeline:
    """The pipeline of that name, or one line naming the ones there are."""
    found = pipelines.get(name)
    if found is None:
        known = ", ".join(p.name for p in pipelines.pipelines) or "none"
        raise click.ClickException(f"unknown pipeline {name!r} (known: {known})")
    return found
