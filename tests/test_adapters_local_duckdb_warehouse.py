"""The embedded warehouse shares its file with other processes: held only while it works."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from service.adapters.local.duckdb_warehouse import DuckDbWarehouse, command_line, lock_holder
from service.errors import TransientError

# A process that opens the file (taking DuckDB's lock), says so, and keeps it until told.
HOLDER = """
import sys, duckdb
conn = duckdb.connect(sys.argv[1])
print("held", flush=True)
sys.stdin.readline()
conn.close()
"""
# Bounds the wait for the first refused open (the loop stops by itself).
WAIT_SECONDS = 60.0


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    path = tmp_path / "w.duckdb"
    with subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None and process.stdout.readline().strip() == "held"
            yield process
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)


def release(process: subprocess.Popen[str]) -> None:
    assert process.stdin is not None
    process.stdin.write("\n")
    process.stdin.flush()
    process.wait(30)


async def test_two_warehouses_in_two_processes_take_turns(tmp_path: Path) -> None:
    """The first process's warehouse stays usable while another process opens the file."""
    warehouse = DuckDbWarehouse(tmp_path / "w.duckdb")
    assert await warehouse.tables() == []
    opener = "import duckdb, sys; duckdb.connect(sys.argv[1]).close()"
    probe = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", opener, str(tmp_path / "w.duckdb")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr  # the old warehouse kept the file locked
    await warehouse.ping()
    await warehouse.close()


async def test_a_held_file_is_one_line_naming_the_holder(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    warehouse = DuckDbWarehouse(tmp_path / "w.duckdb", lock_wait_seconds=0)
    with pytest.raises(TransientError) as caught:
        await warehouse.tables()
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"the warehouse {tmp_path / 'w.duckdb'} is in use by another")
    assert f"(PID {holder.pid}: " in message
    assert "was not free within 0 s" in message


async def test_a_load_waits_for_the_other_process(
    tmp_path: Path, holder: subprocess.Popen[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    refused = threading.Event()
    real_connect = duckdb.connect

    def connect(*args: Any, **kwargs: Any) -> duckdb.DuckDBPyConnection:
        try:
            return real_connect(*args, **kwargs)
        except duckdb.IOException:
            refused.set()
            raise

    monkeypatch.setattr(duckdb, "connect", connect)  # the module the warehouse calls
    warehouse = DuckDbWarehouse(tmp_path / "w.duckdb", lock_wait_seconds=WAIT_SECONDS)
    waiting = asyncio.create_task(warehouse.tables())
    assert await asyncio.to_thread(refused.wait, WAIT_SECONDS)  # it tried while held...
    assert not waiting.done()
    release(holder)
    assert await waiting == []  # ...and got the file once the other process let go


def test_the_holder_is_named_by_its_command() -> None:
    message = (
        'IO Error: Could not set lock on file "/d/w.duckdb": Conflicting lock is held in'
        " /usr/bin/python3.11 (PID 4242) by user me. See also https://duckdb.org/docs"
    )
    named = command_line(4242) or "/usr/bin/python3.11"  # a process 4242 may exist here
    assert lock_holder(message) == f"PID 4242: {named}"
    assert lock_holder("IO Error: disk full") is None


def test_a_console_script_is_named_without_its_interpreter(tmp_path: Path) -> None:
    script = tmp_path / "ingest"
    script.write_text("import sys\nprint('up', flush=True)\nsys.stdin.read()\n")
    with subprocess.Popen(
        [sys.executable, str(script), "serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None and process.stdout.readline().strip() == "up"
            assert command_line(process.pid) == "ingest serve"
        finally:
            process.kill()


async def test_every_connection_bounds_duckdbs_memory(tmp_path: Path) -> None:
    # Unbounded, DuckDB caches what a 1 GiB insert wrote, up to 80% of the machine's RAM.
    warehouse = DuckDbWarehouse(tmp_path / "w.duckdb")

    def limit(conn: duckdb.DuckDBPyConnection) -> Any:
        row = conn.execute("SELECT current_setting('memory_limit')").fetchone()
        return row[0] if row else None

    try:
        assert await warehouse._run(limit) == "61.0 MiB"  # 64 MB
    finally:
        await warehouse.close()
