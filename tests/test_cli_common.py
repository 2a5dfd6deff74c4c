"""service/cli/common.py, and the helpers the other CLI tests share (imported from here)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from service.adapters.local.directory_store import DirectoryObjectStore
from service.adapters.local.sqlite_ledger import SqliteLedgerStore
from service.cli import main
from service.cli.common import load_settings, parse_since
from service.models import LedgerRecord, UnitState
from service.ports import LedgerQuery
from tests.conftest import EXAMPLES
from tests.serving import Server, free_port, start_server

ORDERS_20 = EXAMPLES / "events" / "orders_2026-11-20.json"
ORDERS_21 = EXAMPLES / "events" / "orders_2026-11-21.json"
CUSTOMERS = EXAMPLES / "events" / "customers_customers.json"


@dataclass(frozen=True)
class Workspace:
    """A data folder and a private copy of the example pipelines (tests may rewrite it)."""

    root: Path

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def pipelines(self) -> Path:
        return self.root / "config" / "pipelines.toml"

    def env(self, **extra: str | None) -> dict[str, str | None]:
        env: dict[str, str | None] = {
            "INGEST_BACKEND": "embedded",
            "INGEST_DATA_DIR": str(self.data_dir),
            "INGEST_PIPELINES": str(self.pipelines),
            "INGEST_LOG_FORMAT": "text",
            "INGEST_REPLAY_URL": None,
        }
        env.update(extra)
        return env

    def seed(self) -> DirectoryObjectStore:
        """The example CSVs in the embedded bucket at generation 1, as the example events say."""
        store = DirectoryObjectStore(self.data_dir / "buckets")
        data = EXAMPLES / "data"
        for path in sorted(data.rglob("*.csv")):
            bucket, *parts = path.relative_to(data).parts
            store.put(bucket, "/".join(parts), path.read_bytes(), "text/csv")
        return store

    def records(self, state: UnitState | None = None) -> list[LedgerRecord]:
        async def read() -> list[LedgerRecord]:
            store = SqliteLedgerStore(self.data_dir / "ledger.sqlite3")
            return [s.record for s in await store.list(LedgerQuery(state), limit=1000)]

        return asyncio.run(read())


def make_workspace(root: Path) -> Workspace:
    """Each CLI test module wraps this in its own ``space`` fixture."""
    space = Workspace(root)
    shutil.copytree(EXAMPLES / "schemas", space.root / "config" / "schemas")
    shutil.copy(EXAMPLES / "pipelines.toml", space.pipelines)
    return space


@pytest.fixture
def space(tmp_path: Path) -> Workspace:
    return make_workspace(tmp_path)


@contextlib.contextmanager
def serving(space: Workspace, **env: str) -> Iterator[Server]:
    """A real `ingest serve --embedded` on a free local port, with the workspace's settings."""
    variables = {k: v for k, v in space.env(**env).items() if v is not None}
    variables |= {"PATH": os.environ["PATH"], "HOME": str(space.root), "PORT": str(free_port())}
    ingest = str(Path(sys.executable).parent / "ingest")
    argv = [ingest, "serve", "--embedded", "--host", "127.0.0.1"]
    server = start_server(argv, variables, space.root, space.root / "serve.log")
    try:
        server.wait_ready()
        yield server
    finally:
        server.terminate()
        try:
            server.wait_exit(30)
        finally:
            server.kill()


def run_cli(args: list[str], env: Mapping[str, str | None], stdin: str | None = None) -> Result:
    """The `ingest` command line through click's runner, as a shell would call it."""
    return CliRunner().invoke(main, args, env=env, input=stdin, catch_exceptions=False)


def error_line(result: Result) -> str:
    """The one line a failing command prints: an error, never a traceback."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.output
    assert lines, f"no error printed; output was:\n{result.output}"
    return lines[-1]


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_parse_since_reads_ages_and_instants() -> None:
    now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    assert parse_since("30m", now) == now - timedelta(minutes=30)
    assert parse_since("2h", now) == now - timedelta(hours=2)
    assert parse_since("7d", now) == now - timedelta(days=7)
    assert parse_since("2026-11-20T08:00:00Z") == datetime(2026, 11, 20, 8, tzinfo=UTC)
    assert parse_since("2026-11-20") == datetime(2026, 11, 20, tzinfo=UTC)
    assert parse_since(None) is None


def test_parse_since_refuses_nonsense() -> None:
    with pytest.raises(click.BadParameter, match="neither an ISO 8601 time nor an age"):
        parse_since("yesterday")


def test_bad_setting_is_one_line_naming_the_variable(space: Workspace) -> None:
    result = run_cli(["ledger", "list"], space.env(INGEST_MAX_UNITS_IN_FLIGHT="many"))
    assert result.exit_code == 1
    assert error_line(result).startswith("Error: INGEST_MAX_UNITS_IN_FLIGHT='many' is invalid")


def test_flags_override_the_environment(space: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_BACKEND", "embedded")
    monkeypatch.setenv("INGEST_DATA_DIR", str(space.data_dir))
    settings = load_settings(backend="gcp", project="p", data_dir=None)
    assert (settings.backend, settings.project, settings.data_dir) == (
        "gcp",
        "p",
        space.data_dir,
    )


def test_help_lists_every_command_family() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("serve", "replay", "event", "sweep", "ledger", "check-config", "tables"):
        assert f"  {command} " in result.output


def test_version() -> None:
    from importlib.metadata import version

    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"ingest, version {version('gcp-ingest')}"
