"""What every command shares: the console, settings with flag overrides, backends for a while."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click
from rich.console import Console

from service.errors import ConfigError, IngestError
from service.settings import Settings, replace_settings

T = TypeVar("T")

console = Console()
# Errors and progress go to stderr so stdout stays clean for JSON that is piped on.
err_console = Console(stderr=True)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with the flags that were given laid over them."""
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    changes = {k: v for k, v in overrides.items() if v is not None}
    return replace_settings(settings, **changes) if changes else settings


def run_async(work: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine; the project's own errors become one clear line, not a traceback."""
    try:
        return asyncio.run(_call(work))
    except IngestError as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc


async def _call(work: Callable[[], Awaitable[T]]) -> T:
    return await work()
