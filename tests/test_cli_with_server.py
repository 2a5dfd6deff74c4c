"""Every command works on the data folder a running ``ingest serve`` uses (the embedded default).

The server and each command are separate processes, as on a developer's machine: the server
must not hold the warehouse (DuckDB allows one writing process at a time) between its loads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import EXAMPLES
from tests.test_cli_common import ORDERS_21, Workspace, make_workspace, serving
from tests.test_cli_serve import run_ingest

ORDERS = EXAMPLES / "data" / "landing" / "orders"
CUSTOMERS = EXAMPLES / "data" / "landing" / "customers"
# The example pipelines' threshold, and a stricter one that rejects 2026-11-21.csv (2 of 8 bad).
USUAL_RATIO = "max_ratio = 0.25"
STRICT_RATIO = "max_ratio = 0.1"


@pytest.fixture
def space(tmp_path: Path) -> Workspace:
    return make_workspace(tmp_path)


def ok(space: Workspace, *args: str) -> str:
    """``ingest ARGS`` as its own process; it must succeed. Its stdout."""
    result = run_ingest(space, *args)
    print(f"$ ingest {' '.join(args)}\n{result.stdout}{result.stderr}")  # shown on failure, or -s
    assert result.returncode == 0, f"ingest {' '.join(args)}:\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stdout


def post(url: str, recorded: dict[str, Any]) -> httpx.Response:
    """A recorded request sent to the server, as the platform would deliver it."""
    body = recorded["body"]
    content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    return httpx.post(url, headers=recorded["headers"], content=content, timeout=60)


def rows(space: Workspace) -> dict[str, int]:
    return {t["table"]: t["rows"] for t in json.loads(ok(space, "tables", "--json"))}


def test_every_command_works_while_the_server_runs(space: Workspace) -> None:
    pipelines = space.pipelines.read_text()
    assert USUAL_RATIO in pipelines
    space.pipelines.write_text(pipelines.replace(USUAL_RATIO, STRICT_RATIO))
    with serving(space) as server:
        uploaded = json.loads(
            ok(space, "upload", "--json", str(ORDERS), str(CUSTOMERS), "gs://landing/")
        )
        assert [(u["uri"], u["generation"]) for u in uploaded] == [
            ("gs://landing/orders/2026-11-20.csv", 1),
            ("gs://landing/orders/2026-11-21.csv", 1),
            ("gs://landing/customers/customers.csv", 1),
        ]
        # The server runs one unit (rejected: too many bad rows for the strict threshold)...
        assert post(server.url, json.loads(ORDERS_21.read_text())).status_code == 200
        # ...and the commands run theirs beside it, on the same warehouse and ledger.
        event = ok(
            space, "event", "storage", "--bucket", "landing", "--name", "orders/2026-11-20.csv"
        )
        (space.root / "event.json").write_text(event)
        ok(space, "replay", str(space.root / "event.json"), "--in-process")
        ok(space, "sweep", "customers")
        ok(space, "sweep", "orders", "--prefix", "orders/2026-11-2", "--dry-run")
        assert rows(space) == {"sales.customers": 6, "sales.orders": 5}
        [failed] = json.loads(ok(space, "ledger", "list", "--state", "FAILED", "--json"))
        assert failed["unit"].endswith("gs://landing/orders/2026-11-21.csv#1")
        assert "FAILED" in ok(space, "ledger", "show", failed["key"])
        # The commands that look before and after a load work beside the server too.
        bad = " ".join(ok(space, "quarantine", failed["key"]).split())
        assert "file rejected: 2 of 8 rows bad" in bad and "2 bad rows by reason" in bad
        assert "sales.customers: 2 rows" in ok(space, "peek", "sales.customers", "--limit", "2")
        tried = ok(space, "try", str(ORDERS / "2026-11-20.csv"), "--pipeline", "orders")
        assert "rows read 5: would load 5, quarantine 0, reject 0 (nothing was written)" in tried
        schema = ok(space, "schema", "infer", str(CUSTOMERS / "customers.csv"))
        assert json.loads(schema[: schema.rindex("]") + 1])[3] == {
            "name": "signed_up",
            "type": "DATE",
            "mode": "NULLABLE",
        }
        space.pipelines.write_text(pipelines)  # the usual threshold: the retry loads the file
        [retried] = json.loads(ok(space, "ledger", "retry", failed["key"], "--json"))
        assert (retried["status"], retried["rows_loaded"]) == ("loaded", 6)
        # The server still loads after the commands have written the same files: the same bytes
        # again are a duplicate of the loaded generation, a corrected file loads.
        same = ORDERS / "2026-11-20.csv"
        ok(space, "upload", str(same), "gs://landing/orders/2026-11-20.csv")
        again = ok(
            space, "event", "storage", "--bucket", "landing", "--name", "orders/2026-11-20.csv"
        )
        answer = post(server.url, json.loads(again))
        assert (answer.status_code, answer.json()["status"]) == (200, "duplicate")
        corrected = space.root / "2026-11-20.csv"
        corrected.write_text(same.read_text() + "\n")
        ok(space, "upload", str(corrected), "gs://landing/orders/2026-11-20.csv")
        fixed = ok(
            space, "event", "storage", "--bucket", "landing", "--name", "orders/2026-11-20.csv"
        )
        answer = post(server.url, json.loads(fixed))
        assert answer.status_code == 200
        assert answer.json()["rows_loaded"] == 5
        assert rows(space) == {"sales.customers": 6, "sales.orders": 16}
        assert httpx.get(f"{server.url}/readyz").status_code == 200


def test_a_command_run_elsewhere_says_where_it_looked(space: Workspace) -> None:
    missing = space.root / "elsewhere" / ".ingest-data"
    commands = [
        ["tables"],
        ["ledger", "list"],
        ["sweep", "orders"],
        ["replay", str(ORDERS_21), "--in-process"],
        ["event", "storage", "--bucket", "landing", "--name", "orders/2026-11-21.csv"],
    ]
    for args in commands:
        result = run_ingest(space, *args, INGEST_DATA_DIR=str(missing))
        assert result.returncode == 1
        assert result.stderr.strip().splitlines() == [
            f"Error: no data folder at {missing} (INGEST_DATA_DIR={missing}): run this where the"
            " data is (where `ingest serve` or `ingest upload` ran), or set INGEST_DATA_DIR"
        ]
    assert not missing.exists()
