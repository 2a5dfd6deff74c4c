"""Property-based: hostile object names against the edge, on the embedded backend.

Every storage event names an object; the names here carry NUL and other control bytes, CR/LF,
``.`` and ``..`` segments, empty segments, ``%`` escapes, long segments and long names, in and
out of a pipeline's prefix, for objects that exist and objects that do not. For each request:
never a 5xx other than a deliberate 503, always a JSON answer, and once it is answered no unit
holds a lease (a lease left behind answers every redelivery 429 until it expires).
Deterministic and modest in size: the machine has two cores.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.app import create_app
from service.errors import IngestError
from service.models import ObjectRef, UnitState
from service.ports import LedgerQuery
from service.runtime import Runtime
from service.settings import Settings
from tests.conftest import EXAMPLES

PROFILE = settings(
    derandomize=True,
    deadline=None,
    database=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.too_slow],
)
# Answers the edge may give; 503 is the deliberate "try again" (a backend unavailable).
ALLOWED = {200, 400, 413, 415, 429, 503}
ROWS = b"order_id,cust,order_date,amount,paid,created_at\n" + (
    b"1,C1,2026-11-20,1.50,true,2026-11-20T08:00:00Z\n"
)

segment = st.one_of(
    st.text(st.characters(codec="utf-8"), min_size=0, max_size=8),
    st.sampled_from([".", "..", "", "%00", "%2F", "%", "\x00", "\r\n", "\n", " ", "a\x00b"]),
    st.integers(200, 400).map(lambda n: "x" * n),  # over a file system's 255-byte segment
)
name = st.one_of(
    # In the orders pipeline's prefix and glob: these reach a claim and a unit.
    st.lists(segment, min_size=1, max_size=5).map(lambda p: "orders/" + "/".join(p) + ".csv"),
    st.lists(segment, min_size=1, max_size=3).map("/".join),
    st.integers(1000, 1100).map(lambda n: "orders/" + "y" * n + ".csv"),  # about GCS's 1,024 B
)


@dataclass(frozen=True)
class Delivery:
    name: str
    stored: bool  # the object exists in the bucket (when the store can hold the name)
    in_subject: bool  # the name also travels percent-encoded in ce-subject
    generation: int


deliveries = st.builds(
    Delivery,
    name=name,
    stored=st.booleans(),
    in_subject=st.booleans(),
    generation=st.integers(1, 9),
)


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[asyncio.Runner, Any, Runtime]]:
    data_dir: Path = tmp_path_factory.mktemp("names")
    config = Settings(
        data_dir=data_dir, pipelines_file=EXAMPLES / "pipelines.toml", log_format="text"
    )
    app = create_app(config)
    runner = asyncio.Runner()
    test_app = app.test_app()
    runner.run(test_app.startup())
    try:
        yield runner, test_app.test_client(), app.extensions["runtime"]
    finally:
        runner.run(test_app.shutdown())
        runner.close()


def request(d: Delivery, number: int, generation: int) -> tuple[dict[str, str], bytes]:
    headers = {
        "content-type": "application/json",
        "ce-specversion": "1.0",
        "ce-type": "google.cloud.storage.object.v1.finalized",
        "ce-source": "//storage.googleapis.com/projects/_/buckets/landing",
        "ce-id": f"names-{number}",
    }
    if d.in_subject:
        headers["ce-subject"] = "objects/" + quote(d.name, safe="/")
    body = {"bucket": "landing", "name": d.name, "generation": str(generation), "size": len(ROWS)}
    return headers, json.dumps(body).encode()


async def stored_generation(runtime: Runtime, d: Delivery) -> int:
    """Put the object in the embedded bucket when the store takes the name: its generation."""
    try:
        ref = await runtime.backends.store.write(ObjectRef("landing", d.name), ROWS, "text/csv")
    except IngestError:
        return d.generation  # a name the directory store refuses: the event names no object
    return ref.generation or d.generation


async def leases_held(runtime: Runtime) -> list[str]:
    now = datetime.now(UTC)
    running = await runtime.backends.ledger_store.list(
        LedgerQuery(UnitState.IN_PROGRESS), limit=1000
    )
    return [str(s.record.unit) for s in running if s.record.lease_expires_at > now]


@PROFILE
@given(d=deliveries)
def test_hostile_names_get_a_defined_answer_and_leave_no_lease(
    served: tuple[asyncio.Runner, Any, Runtime], d: Delivery
) -> None:
    runner, client, runtime = served
    Sent.count += 1
    generation = runner.run(stored_generation(runtime, d)) if d.stored else d.generation
    headers, body = request(d, Sent.count, generation)
    response = runner.run(client.post("/", headers=headers, data=body))
    assert response.status_code in ALLOWED, runner.run(response.get_data())
    answer = runner.run(response.get_json())
    assert isinstance(answer, dict) and isinstance(answer["status"], str)
    assert runner.run(leases_held(runtime)) == []


class Sent:
    count = 0
