"""``ingest event``: the printed events decode to what they claim, and replay as printed."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from service.events import decode
from service.models import ObjectFinalized, SweepRequested
from service.recording import parse_requests
from tests.conftest import EXAMPLES
from tests.test_cli_common import Workspace, error_line, make_workspace, run_cli

ORDERS_CSV = EXAMPLES / "data" / "landing" / "orders" / "2026-11-20.csv"


@pytest.fixture
def space(tmp_path: Path) -> Workspace:
    return make_workspace(tmp_path)


def printed_event(space: Workspace, *args: str) -> ObjectFinalized | SweepRequested:
    result = run_cli(["event", *args], space.env())
    assert result.exit_code == 0, result.output
    [request] = parse_requests(result.stdout, "stdout")
    event = decode(request.headers, request.body)
    assert isinstance(event, ObjectFinalized | SweepRequested)
    return event


def test_storage_reads_the_live_generation_size_and_md5(space: Workspace) -> None:
    store = space.seed()
    data = b"order_id,cust,order_date,amount,paid,created_at\n"
    ref = store.put("landing", "orders/2026-11-20.csv", data, "text/csv")  # new bytes: gen 2
    event = printed_event(
        space, "storage", "--bucket", "landing", "--name", "orders/2026-11-20.csv"
    )
    assert isinstance(event, ObjectFinalized)
    info = event.object
    assert (info.ref.generation, ref.generation) == (2, 2)
    assert info.size == len(data)
    assert info.md5_base64 == base64.b64encode(hashlib.md5(data).digest()).decode()
    assert info.content_type == "text/csv"
    assert event.meta.shape == "cloudevent-binary"


@pytest.mark.parametrize(
    ("shape", "decoded_as"),
    [
        ("cloudevent", "cloudevent-binary"),
        ("structured", "cloudevent-structured"),
        ("notification", "pubsub-push+gcs-notification"),
    ],
)
def test_storage_in_every_shape(space: Workspace, shape: str, decoded_as: str) -> None:
    args = ["storage", "--bucket", "raw-files", "--name", "x/y.csv", "--generation", "7"]
    event = printed_event(space, *args, "--shape", shape, "--event-id", "e-1")
    assert isinstance(event, ObjectFinalized)
    assert (event.meta.shape, event.meta.event_id) == (decoded_as, "e-1")
    assert (event.object.ref.bucket, event.object.ref.name, event.object.ref.generation) == (
        "raw-files",
        "x/y.csv",
        7,
    )


def test_storage_with_a_generation_does_not_touch_the_store(space: Workspace) -> None:
    args = ["storage", "--bucket", "landing", "--name", "orders/a.csv", "--generation", "3"]
    event = printed_event(space, *args)
    assert isinstance(event, ObjectFinalized)
    assert event.object.ref.generation == 3
    assert event.object.size == 0  # left for the service to read from the store
    assert not space.data_dir.exists()


def test_storage_notes_an_object_no_pipeline_takes(space: Workspace) -> None:
    args = ["event", "storage", "--bucket", "other", "--name", "a.csv", "--generation", "1"]
    result = run_cli(args, space.env())
    assert result.exit_code == 0
    assert result.stderr.strip() == "note: no pipeline matches gs://other/a.csv"
    json.loads(result.stdout)  # stdout is still only the event


def test_storage_of_a_missing_object_is_one_line(space: Workspace) -> None:
    space.seed()
    args = ["event", "storage", "--bucket", "landing", "--name", "orders/nope.csv"]
    result = run_cli(args, space.env())
    assert result.exit_code == 1
    assert error_line(result) == "Error: NotFoundError: gs://landing/orders/nope.csv does not exist"
    assert result.stdout == ""


def test_storage_refuses_what_the_service_would_refuse(space: Workspace) -> None:
    args = ["event", "storage", "--bucket", "B!", "--name", "a.csv", "--generation", "1"]
    result = run_cli(args, space.env())
    assert result.exit_code == 1
    assert error_line(result) == (
        "Error: the service would refuse this event: "
        "bucket is not a valid Cloud Storage bucket name"
    )
    assert result.stdout == ""


def test_storage_needs_bucket_and_name(space: Workspace) -> None:
    result = run_cli(["event", "storage", "--bucket", "landing"], space.env())
    assert result.exit_code == 2
    assert "Missing option '--name'" in result.output


@pytest.mark.parametrize(
    ("shape", "decoded_as"), [("push", "pubsub-push"), ("cloudevent", "cloudevent-binary")]
)
def test_scheduler_names_pipeline_and_date(space: Workspace, shape: str, decoded_as: str) -> None:
    args = ["scheduler", "--pipeline", "orders", "--date", "2026-11-20", "--shape", shape]
    event = printed_event(space, *args)
    assert isinstance(event, SweepRequested)
    assert (event.pipeline, event.date, event.meta.shape) == ("orders", "2026-11-20", decoded_as)


def test_scheduler_without_a_date(space: Workspace) -> None:
    event = printed_event(space, "scheduler", "--pipeline", "customers")
    assert isinstance(event, SweepRequested)
    assert (event.pipeline, event.date) == ("customers", None)


def test_scheduler_refuses_an_unknown_pipeline(space: Workspace) -> None:
    result = run_cli(["event", "scheduler", "--pipeline", "ordrs"], space.env())
    assert result.exit_code == 1
    assert error_line(result) == "Error: unknown pipeline 'ordrs' (known: orders, customers)"


def test_scheduler_refuses_a_bad_date(space: Workspace) -> None:
    args = ["event", "scheduler", "--pipeline", "orders", "--date", "20/11/2026"]
    result = run_cli(args, space.env())
    assert result.exit_code == 2
    assert "does not match the format '%Y-%m-%d'" in result.output


def test_a_printed_event_replays_as_is(space: Workspace, tmp_path: Path) -> None:
    space.seed()
    args = ["event", "storage", "--bucket", "landing", "--name", "orders/2026-11-20.csv"]
    printed = run_cli([*args, "--shape", "notification"], space.env())
    (tmp_path / "event.json").write_text(printed.stdout)
    result = run_cli(["replay", str(tmp_path / "event.json"), "--in-process"], space.env())
    assert result.exit_code == 0, result.output
    assert "1 event in" in result.output and "1 loaded" in result.output
    [record] = space.records()
    assert record.unit == "orders:gs://landing/orders/2026-11-20.csv#1"
    assert ORDERS_CSV.exists()
