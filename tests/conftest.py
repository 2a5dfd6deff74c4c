"""Shared fixtures: embedded settings and app, sample data, and the emulator session fixtures."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from quart.typing import TestAppProtocol as RunningApp

from service.adapters.local.directory_store import DirectoryObjectStore
from service.app import create_app
from service.settings import Settings

pytest_plugins = ["tests.emulator_fixtures"]

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
EVENTS = Path(__file__).resolve().parent / "events"


@pytest.fixture
def embedded_settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        pipelines_file=EXAMPLES / "pipelines.toml",
        log_format="text",
    )


def seed_examples(settings: Settings) -> DirectoryObjectStore:
    """The sample files in the embedded bucket, each at generation 1 (as the events say)."""
    store = DirectoryObjectStore(settings.data_dir / "buckets")
    data = EXAMPLES / "data"
    for path in sorted(data.rglob("*.csv")):
        bucket, *parts = path.relative_to(data).parts
        store.put(bucket, "/".join(parts), path.read_bytes(), "text/csv")
    return store


@pytest.fixture
async def embedded_app(embedded_settings: Settings) -> AsyncIterator[RunningApp]:
    seed_examples(embedded_settings)
    app = create_app(embedded_settings)
    async with app.test_app() as test_app:
        yield test_app
