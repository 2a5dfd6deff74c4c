"""Graceful shutdown: SIGTERM to a real ``ingest serve`` in the middle of an ingestion."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.adapters.local.directory_store import DirectoryObjectStore
from service.adapters.local.sqlite_ledger import SqliteLedgerStore
from service.app import create_app
from service.errors import ConfigError
from service.ledger import Claimed, Ledger
from service.models import LedgerRecord, UnitKey, UnitState
from service.serve import find_config, hypercorn_config, shutdown_watchdog
from service.settings import Settings
from tests.conftest import EXAMPLES, ROOT
from tests.serving import POLL_SECONDS, READY_SECONDS, Server, free_port, start_server

# Cloud Run SIGKILLs 10 s after SIGTERM: the process must be gone by then.
CLOUD_RUN_GRACE_SECONDS = 10
HEADER = "order_id,cust,order_date,amount,paid,created_at"


@dataclass(frozen=True)
class Unit:
    key: UnitKey
    headers: dict[str, str]
    body: bytes


def land_orders(data_dir: Path, rows: int, name: str = "orders/big.csv") -> Unit:
    """A CSV of ``rows`` valid orders in the embedded bucket, and its storage event."""
    lines = [HEADER] + [
        f"{i},C{i % 100:03d},2026-11-20,{i % 97}.5,true,2026-11-20T08:15:00Z" for i in range(rows)
    ]
    store = DirectoryObjectStore(data_dir / "buckets")
    ref = store.put("landing", name, ("\n".join(lines) + "\n").encode(), "text/csv")
    assert ref.generation is not None
    headers = {
        "Content-Type": "application/json",
        "ce-specversion": "1.0",
        "ce-type": "google.cloud.storage.object.v1.finalized",
        "ce-source": "//storage.googleapis.com/projects/_/buckets/landing",
        "ce-subject": f"objects/{name}",
        "ce-id": f"event-{name}",
        "ce-time": "2026-11-21T06:00:02Z",
    }
    body = {"bucket": "landing", "name": name, "generation": str(ref.generation)}
    key = UnitKey("orders", "landing", name, ref.generation)
    return Unit(key, headers, json.dumps(body).encode())


def ledger_record(data_dir: Path, key: UnitKey) -> LedgerRecord | None:
    async def read() -> LedgerRecord | None:
        store = SqliteLedgerStore(data_dir / "ledger.sqlite3")
        try:
            stored = await store.get(key.digest)
            return None if stored is None else stored.record
        finally:
            await store.close()

    return asyncio.run(read())


def serve(tmp_path: Path, graceful_timeout: float | None, chunk_bytes: int) -> Server:
    """``ingest serve`` in ``tmp_path``; its hypercorn.toml is the project's or a shorter one."""
    config = (ROOT / "hypercorn.toml").read_text()
    if graceful_timeout is not None:
        config = config.replace("graceful_timeout = 7", f"graceful_timeout = {graceful_timeout}")
    (tmp_path / "hypercorn.toml").write_text(config)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "PORT": str(free_port()),
        "INGEST_HOST": "127.0.0.1",
        "INGEST_BACKEND": "embedded",
        "INGEST_DATA_DIR": str(tmp_path / "data"),
        "INGEST_PIPELINES": str(EXAMPLES / "pipelines.toml"),
        # Small reads make one unit of a few MB take seconds: long enough to be caught mid-way.
        "INGEST_CHUNK_BYTES": str(chunk_bytes),
        "INGEST_LOG_FORMAT": "json",
    }
    ingest = str(Path(sys.executable).parent / "ingest")
    server = start_server([ingest, "serve"], env, tmp_path, tmp_path / "server.log")
    server.wait_ready()
    return server


class Post(threading.Thread):
    """POST the event in the background; keeps the answer (or the connection error)."""

    def __init__(self, url: str, unit: Unit) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.unit = unit
        self.status: int | None = None
        self.body: dict[str, Any] = {}
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            response = httpx.post(
                self.url, headers=self.unit.headers, content=self.unit.body, timeout=120
            )
            self.status, self.body = response.status_code, response.json()
        except httpx.HTTPError as exc:
            self.error = exc


def wait_until(condition: Any, what: str, server: Server) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(POLL_SECONDS)
    raise AssertionError(f"{what} did not happen:\n{server.output()}")


def in_progress(data_dir: Path, key: UnitKey) -> bool:
    record = ledger_record(data_dir, key)
    return record is not None and record.state is UnitState.IN_PROGRESS


def test_sigterm_gives_up_a_unit_that_cannot_finish_and_releases_its_lease(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    unit = land_orders(data, rows=200_000)  # about 10 MB: several seconds at 256-byte reads
    server = serve(tmp_path, graceful_timeout=2, chunk_bytes=256)
    try:
        post = Post(f"{server.url}/", unit)
        post.start()
        wait_until(lambda: in_progress(data, unit.key), "the claim", server)
        server.terminate()
        assert server.wait_exit(CLOUD_RUN_GRACE_SECONDS) == 0
        post.join(READY_SECONDS)
    finally:
        server.kill()
    # The request was answered "retry" (503), not dropped and not acknowledged.
    assert post.status == 503, (post.status, post.error, server.output())
    assert post.body["status"] == "transient"
    record = ledger_record(data, unit.key)
    assert record is not None
    assert record.state is UnitState.IN_PROGRESS
    assert record.lease_expires_at <= datetime.now(UTC)  # released, not left to expire
    assert "given up at shutdown" in server.output()
    # The redelivery takes the unit over at once instead of answering "busy".
    claim = asyncio.run(claim_again(data, unit.key, record.fingerprint))
    assert isinstance(claim, Claimed) and claim.takeover


async def claim_again(data_dir: Path, key: UnitKey, fingerprint: str) -> object:
    store = SqliteLedgerStore(data_dir / "ledger.sqlite3")
    try:
        return await Ledger(store, owner="next", lease_seconds=600).claim(key, fingerprint)
    finally:
        await store.close()


def test_sigterm_lets_the_unit_in_flight_finish_and_refuses_new_events(tmp_path: Path) -> None:
    data = tmp_path / "data"
    unit = land_orders(data, rows=40_000)  # about a second: well inside the 7 s grace
    late_unit = land_orders(data, rows=10, name="orders/late.csv")
    server = serve(tmp_path, graceful_timeout=None, chunk_bytes=1024)
    try:
        post = Post(f"{server.url}/", unit)
        post.start()
        wait_until(lambda: in_progress(data, unit.key), "the claim", server)
        server.terminate()
        wait_until(lambda: "SIGTERM received" in server.output(), "the signal", server)
        late = Post(f"{server.url}/", late_unit)
        late.run()  # in this thread: a new event after SIGTERM
        # Refused: 503 (redeliver), or no connection at all once the listener has closed.
        assert late.status == 503 or isinstance(late.error, httpx.TransportError), late.status
        assert server.wait_exit(CLOUD_RUN_GRACE_SECONDS) == 0
        post.join(READY_SECONDS)
    finally:
        server.kill()
    assert (post.status, post.body.get("status")) == (200, "loaded"), server.output()
    log = server.output()
    assert log.index("SIGTERM received") < log.index(f"unit {unit.key}: loaded")  # was in flight
    assert post.body["rows_loaded"] == 40_000
    record = ledger_record(data, unit.key)
    assert record is not None and record.state is UnitState.COMPLETED
    assert ledger_record(data, late_unit.key) is None  # the late event was not started


async def test_a_draining_app_answers_503_to_events(embedded_settings: Settings) -> None:
    app = create_app(embedded_settings)
    async with app.test_app() as running:
        app.extensions["runtime"].drain()
        response = await running.test_client().post(
            "/", headers={"Content-Type": "application/json"}, data=b"{}"
        )
        assert response.status_code == 503
        assert (await response.get_json())["status"] == "shutting_down"
        health = await running.test_client().get("/healthz")
        assert health.status_code == 200  # alive while it drains


def test_config_file_is_found_in_the_working_directory_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert find_config() == ROOT / "hypercorn.toml"  # the checkout's, when the cwd has none
    (tmp_path / "hypercorn.toml").write_text("graceful_timeout = 3\n")
    assert find_config() == Path("hypercorn.toml")
    config = hypercorn_config("127.0.0.1", 9999, find_config())
    assert (config.bind, config.graceful_timeout) == (["127.0.0.1:9999"], 3)
    with pytest.raises(ConfigError, match="no such Hypercorn configuration file"):
        find_config(tmp_path / "missing.toml")


@pytest.mark.parametrize(
    ("content", "problem"),
    [("# caf\u00e9\n".encode("latin-1"), "is not UTF-8 text"), (b"workers = \n", "not valid TOML")],
)
def test_an_unusable_config_file_is_one_line_naming_it(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    path = tmp_path / "hypercorn.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        hypercorn_config("127.0.0.1", 8080, path)
    assert str(caught.value).startswith(f"{path}: ")
    assert problem in str(caught.value) and "\n" not in str(caught.value)


def test_more_than_one_worker_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "hypercorn.toml"
    path.write_text("workers = 4\n")
    with pytest.raises(ConfigError, match="one worker per instance"):
        hypercorn_config("127.0.0.1", 8080, path)


def test_the_shutdown_watchdog_leaves_once_the_budget_is_spent() -> None:
    left: list[int] = []
    called = threading.Event()

    def leave(code: int) -> None:
        left.append(code)
        called.set()

    shutdown_watchdog(0.01, leave)
    assert called.wait(READY_SECONDS)
    assert left == [1]
    spared = shutdown_watchdog(READY_SECONDS, leave)
    spared.cancel()  # a shutdown that ended in time: the process left before it fired
    assert left == [1]
