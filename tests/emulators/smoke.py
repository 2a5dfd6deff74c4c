"""Smoke check of the four emulators with the real Google client libraries (not a pytest test).

    .venv/bin/python tests/emulators/smoke.py

Starts Firestore, Pub/Sub, fake-gcs-server (notifying Pub/Sub) and local-bigquery, proves each
works through google-cloud-* clients, wipes and stops them, and prints the timings.
"""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq
from google.api_core.client_options import ClientOptions
from google.api_core.exceptions import Conflict
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery, firestore
from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient
from google.cloud.storage import Client as StorageClient

# Run as a file: make the repo root importable, for `tests.emulators`.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests import emulators
from tests.emulators.process import http_json

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tests.emulators import Emulator

T = TypeVar("T")
PROJECT = "test"
timings: dict[str, float] = {}


@contextmanager
def timed(label: str) -> Iterator[None]:
    began = time.monotonic()
    try:
        yield
    finally:
        timings[label] = time.monotonic() - began
        print(f"  {label}: {timings[label]:.2f} s", flush=True)


def anonymous() -> AnonymousCredentials:
    return AnonymousCredentials()  # type: ignore[no-untyped-call, unused-ignore]


def rss_mb(emu: Emulator) -> float:
    """Resident memory of the emulator's process (its group has just that one process)."""
    try:
        for line in Path(f"/proc/{emu.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def check(label: str, fn: Callable[[], T]) -> T:
    with timed(label):
        return fn()


def parquet_bytes(rows: int) -> bytes:
    table = pa.table({"id": list(range(rows)), "name": [f"row-{i}" for i in range(rows)]})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def smoke_firestore() -> None:
    client = firestore.Client(project=PROJECT, credentials=anonymous())
    doc = client.collection("smoke").document("one")
    doc.create({"hello": "world", "n": 1})
    got = doc.get().to_dict()
    assert got == {"hello": "world", "n": 1}, got
    print(f"    firestore: created + got {got}")


def smoke_pubsub() -> None:
    publisher = PublisherClient(credentials=anonymous())
    subscriber = SubscriberClient(credentials=anonymous())
    topic = publisher.topic_path(PROJECT, "smoke")
    sub = subscriber.subscription_path(PROJECT, "smoke-sub")
    publisher.create_topic(name=topic)
    subscriber.create_subscription(name=sub, topic=topic)
    message_id = publisher.publish(topic, b'{"hello":"world"}', origin="smoke").result(timeout=30)
    pulled = subscriber.pull(subscription=sub, max_messages=10, timeout=30)
    assert [m.message.data for m in pulled.received_messages] == [b'{"hello":"world"}'], pulled
    subscriber.acknowledge(subscription=sub, ack_ids=[m.ack_id for m in pulled.received_messages])
    print(f"    pubsub: topic created, published message {message_id}, pulled it back")


def smoke_gcs(parquet: bytes) -> None:
    subscriber = SubscriberClient(credentials=anonymous())
    sub = subscriber.subscription_path(PROJECT, "gcs-events-sub")
    subscriber.create_subscription(name=sub, topic=f"projects/{PROJECT}/topics/gcs-events")

    client = StorageClient(project=PROJECT, credentials=anonymous())
    bucket = client.create_bucket("smoke-bucket")
    blob = bucket.blob("hello.txt")
    blob.upload_from_string(b"hello gcs", content_type="text/plain")
    assert bucket.blob("hello.txt").download_as_bytes() == b"hello gcs"
    bucket.blob("data/rows.parquet").upload_from_string(parquet)
    print("    gcs: uploaded + downloaded hello.txt, uploaded data/rows.parquet")

    events: list[dict[str, str]] = []
    deadline = time.monotonic() + 10
    while len(events) < 2 and time.monotonic() < deadline:
        pulled = subscriber.pull(subscription=sub, max_messages=10, timeout=10)
        for m in pulled.received_messages:
            events.append(dict(m.message.attributes))
        if pulled.received_messages:
            subscriber.acknowledge(
                subscription=sub, ack_ids=[m.ack_id for m in pulled.received_messages]
            )
    kinds = sorted((e.get("eventType", "?"), e.get("objectId", "?")) for e in events)
    expected = [("OBJECT_FINALIZE", "data/rows.parquet"), ("OBJECT_FINALIZE", "hello.txt")]
    assert kinds == expected, events
    print(f"    gcs -> pubsub notifications: {kinds}")


def smoke_bigquery(bq: Emulator, parquet: bytes, rows: int) -> None:
    client = bigquery.Client(
        project=PROJECT,
        credentials=anonymous(),
        client_options=ClientOptions(api_endpoint=bq.url),
    )
    client.create_dataset("smoke")
    config = bigquery.LoadJobConfig(source_format=bigquery.SourceFormat.PARQUET)

    def load() -> Any:
        return client.load_table_from_file(
            io.BytesIO(parquet), "smoke.rows", job_id="smoke-load-1", job_config=config
        )

    job = load()
    job.result(timeout=60)
    assert job.job_id == "smoke-load-1", job.job_id
    count = next(iter(client.query("SELECT COUNT(*) AS n FROM smoke.rows").result()))["n"]
    assert count == rows, count
    print(
        f"    bigquery: dataset created, loaded {job.output_rows} rows (job {job.job_id}), "
        f"COUNT(*) = {count}"
    )
    try:
        load().result(timeout=60)
    except Conflict as error:
        print(f"    bigquery: same job_id again -> Conflict ({error.code}): OK")
    else:
        raise AssertionError("reusing a job_id did not raise Conflict")

    uri = "gs://smoke-bucket/data/rows.parquet"
    job = client.load_table_from_uri(
        uri, "smoke.from_gcs", job_id="smoke-load-gcs", job_config=config
    )
    job.result(timeout=60)
    count = next(iter(client.query("SELECT COUNT(*) AS n FROM smoke.from_gcs").result()))["n"]
    assert count == rows, count
    print(f"    bigquery: load from {uri} -> {count} rows")


def smoke_wipes(fs: Emulator, ps: Emulator, gcs: Emulator, bq: Emulator) -> None:
    emulators.wipe_firestore(fs, PROJECT)
    emulators.wipe_pubsub(ps)
    emulators.wipe_gcs(gcs)
    emulators.wipe_bigquery(bq, PROJECT)
    docs = http_json("GET", f"{fs.url}/v1/projects/{PROJECT}/databases/(default)/documents/smoke")
    topics = http_json("GET", f"{ps.url}/v1/projects/{PROJECT}/topics")
    buckets = http_json("GET", f"{gcs.url}/storage/v1/b")
    datasets = http_json("GET", f"{bq.url}/bigquery/v2/projects/{PROJECT}/datasets")
    jobs = http_json("GET", f"{bq.url}/bigquery/v2/projects/{PROJECT}/jobs")
    left = {
        "firestore docs": docs.get("documents", []),
        "pubsub topics": topics.get("topics", []),
        "gcs buckets": buckets.get("items", []),
        "bigquery datasets": datasets.get("datasets", []),
        "bigquery jobs": jobs.get("jobs", []),
    }
    assert not any(left.values()), json.dumps(left)[:2000]
    print("    wipes: firestore, pubsub, gcs, bigquery all empty afterwards")


def main() -> int:
    emulators.ensure_installed()
    started: list[Emulator] = []
    rows = 1000
    parquet = parquet_bytes(rows)
    with tempfile.TemporaryDirectory(prefix="emulators-smoke-") as tmp:
        workdir = Path(tmp)
        try:
            print("starting:", flush=True)
            ps = check("start pubsub", lambda: emulators.start_pubsub(workdir))
            started.append(ps)
            fs = check("start firestore", lambda: emulators.start_firestore(workdir))
            started.append(fs)
            gcs = check(
                "start gcs", lambda: emulators.start_gcs(workdir, pubsub=ps, topic="gcs-events")
            )
            started.append(gcs)
            bq = check(
                "start bigquery",
                lambda: emulators.start_bigquery(workdir, gcs_root=gcs.data_dir),
            )
            started.append(bq)
            for emu in started:
                os.environ.update(emu.client_env())

            print("checking with the Google client libraries:", flush=True)
            check("firestore", smoke_firestore)
            check("pubsub", smoke_pubsub)
            check("gcs", lambda: smoke_gcs(parquet))
            check("bigquery", lambda: smoke_bigquery(bq, parquet, rows))
            check("wipe all four", lambda: smoke_wipes(fs, ps, gcs, bq))
            print("memory (RSS): " + ", ".join(f"{e.name} {rss_mb(e):.0f} MB" for e in started))
        finally:
            print("stopping:", flush=True)
            for emu in reversed(started):
                check(f"stop {emu.name}", lambda emu=emu: emulators.stop(emu))  # type: ignore[misc]
    print("SMOKE OK")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
