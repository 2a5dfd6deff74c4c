"""A backfill fanned out over two service processes, through the real emulator chain.

N small CSV files in fake-gcs-server; two service processes behind one front-end stand-in that
spreads requests over them (bench/frontend.py); INGEST_WORK_TOPIC on the Pub/Sub emulator with
a push subscription to the front end. One Scheduler sweep starts the backfill: the service
lists the bucket page by page, publishes one work message per file and answers; the messages
come back by push and run as units on whichever process receives them (a process with every
unit slot busy answers 429, and Pub/Sub offers the message again). Then: every file loaded
exactly once (BigQuery emulator), and how the units were shared (the ledger's owners).

    .venv/bin/python bench/scale.py [--files N]
    .venv/bin/python bench/scale.py --listing-stub 100000   # memory of a sweep's listing only

Ends with: objects=N loaded_once=A duplicated=B lost=C share_max=S elapsed_s=E
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.chaos import Service  # noqa: E402
from bench.frontend import running_front_end  # noqa: E402
from bench.scale_listing import listing_memory  # noqa: E402
from service.adapters.gcp.firestore import FirestoreLedgerStore  # noqa: E402
from service.models import Stored, UnitState  # noqa: E402
from service.ports import LedgerQuery  # noqa: E402
from service.settings import Settings  # noqa: E402
from tests.emulators import Emulator, emulator_chain, ensure_installed  # noqa: E402
from tests.emulators.process import free_port, http, http_ok  # noqa: E402

PROJECT = "test"
BUCKET = "scale-landing"
TABLE = "scale.rows"
COLLECTION = "scale-ledger"
WORK_TOPIC = "scale-work"
ROWS_PER_FILE = 3
# Units each process runs at once (the emulators, not the service, set the pace here).
UNITS_IN_FLIGHT = 2
# Tries at counting the rows loaded before the run says it could not count them, and the
# pause between two.
COUNT_ATTEMPTS = 3
COUNT_PAUSE_S = 2.0
# A stalled run (the emulator drops some nacked pushes for good) is swept again after this.
SWEEP_AFTER_STALL_S = 30.0
SCHEMA = [
    {"name": "id", "type": "INTEGER", "mode": "REQUIRED"},
    {"name": "label", "type": "STRING"},
]
PIPELINES = f"""
[[pipelines]]
name = "scale"
bucket = "{BUCKET}"
prefix = "in/"
table = "{TABLE}"
schema = "schema.json"
"""


def upload_all(gcs: Emulator, count: int) -> dict[str, int]:
    """Every file, 8 uploads at a time; name -> generation."""

    def one(index: int) -> tuple[str, int]:
        name = f"in/{index:05d}.csv"
        rows = "".join(f"{index * 10 + r},file {index}\n" for r in range(ROWS_PER_FILE))
        query = urllib.parse.urlencode({"uploadType": "media", "name": name})
        url = f"{gcs.url}/upload/storage/v1/b/{BUCKET}/o?{query}"
        raw = http_ok("POST", url, ("id,label\n" + rows).encode())
        return name, int(json.loads(raw)["generation"])

    with ThreadPoolExecutor(8) as pool:
        return dict(pool.map(one, range(count)))


def service_env(workdir: Path, chain: tuple[Emulator, ...]) -> dict[str, str]:
    firestore, pubsub, gcs, bigquery = chain
    (workdir / "schema.json").write_text(json.dumps(SCHEMA))
    (workdir / "pipelines.toml").write_text(PIPELINES)
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}
    env.update(
        {
            "INGEST_BACKEND": "gcp",
            "INGEST_PROJECT": PROJECT,
            "INGEST_BIGQUERY_ENDPOINT": bigquery.url,
            "INGEST_PIPELINES": str(workdir / "pipelines.toml"),
            "INGEST_LEDGER_COLLECTION": COLLECTION,
            "INGEST_WORK_TOPIC": WORK_TOPIC,
            "INGEST_ACK_DEADLINE_SECONDS": "60",
            "INGEST_LOG_FORMAT": "json",
            "INGEST_LOG_LEVEL": "WARNING",
            "INGEST_MAX_UNITS_IN_FLIGHT": str(UNITS_IN_FLIGHT),
            "FIRESTORE_EMULATOR_HOST": firestore.endpoint,
            "STORAGE_EMULATOR_HOST": gcs.url,
            "PUBSUB_EMULATOR_HOST": pubsub.endpoint,
        }
    )
    return env


def work_subscription(pubsub: Emulator, front_port: int) -> None:
    base = f"{pubsub.url}/v1/projects/{PROJECT}"
    http_ok("PUT", f"{base}/topics/{WORK_TOPIC}", {})
    http_ok(
        "PUT",
        f"{base}/subscriptions/{WORK_TOPIC}-push",
        {
            "topic": f"projects/{PROJECT}/topics/{WORK_TOPIC}",
            "pushConfig": {"pushEndpoint": f"http://127.0.0.1:{front_port}/"},
            "ackDeadlineSeconds": 60,
            "retryPolicy": {"minimumBackoff": "1s", "maximumBackoff": "4s"},
        },
    )


def sweep(front_port: int, number: int) -> tuple[int, dict[str, object], float]:
    """A Scheduler push asking for the backfill; (status, body, seconds to answer)."""
    payload = base64.b64encode(json.dumps({"pipeline": "scale", "prefix": "in/"}).encode())
    envelope = {
        "subscription": f"projects/{PROJECT}/subscriptions/scheduler",
        "message": {"data": payload.decode(), "messageId": f"scale-sweep-{number}"},
    }
    began = time.monotonic()
    status, raw = http("POST", f"http://127.0.0.1:{front_port}/", envelope, timeout=300)
    return status, json.loads(raw or b"{}"), time.monotonic() - began


async def wait_done(
    store: FirestoreLedgerStore, expected: int, front_port: int, timeout_s: float
) -> tuple[list[Stored], int]:
    """Until every unit is COMPLETED or FAILED (or the time is up); sweeps again when progress
    stalls (a sweep publishes only units not yet finished)."""
    deadline = time.monotonic() + timeout_s
    sweeps, last, last_change = 1, -1, time.monotonic()
    records: list[Stored] = []
    while time.monotonic() < deadline:
        records = await store.list(LedgerQuery(UnitState.COMPLETED), limit=expected * 2)
        failed = await store.count(LedgerQuery(UnitState.FAILED), up_to=expected)
        if len(records) + failed >= expected:
            if failed:
                print(f"  {failed} units FAILED (see the service logs)", flush=True)
            break
        if len(records) != last:
            last, last_change = len(records), time.monotonic()
            print(f"  {len(records)}/{expected} units completed", flush=True)
        elif time.monotonic() - last_change > SWEEP_AFTER_STALL_S:
            sweeps += 1
            status, body, _ = await asyncio.to_thread(sweep, front_port, sweeps)
            print(f"  stalled: sweep {sweeps} answered {status} {body.get('fanout')}", flush=True)
            last_change = time.monotonic()
        await asyncio.sleep(2.0)
    return records, sweeps


def warehouse_counts(bigquery: Emulator) -> dict[tuple[str, int], int] | str:
    """Rows per (uri, generation) in the table, or why they could not be counted (a few tries:
    an answer that is an error, unfinished or cut short is not a count)."""
    sql = (
        "SELECT _source_uri AS uri, _source_generation AS gen, COUNT(*) AS n "
        f"FROM `{PROJECT}.{TABLE}` GROUP BY 1, 2"
    )
    why = ""
    for attempt in range(COUNT_ATTEMPTS):
        if attempt:
            time.sleep(COUNT_PAUSE_S)
        status, raw = http(
            "POST",
            f"{bigquery.url}/bigquery/v2/projects/{PROJECT}/queries",
            {"query": sql, "useLegacySql": False, "timeoutMs": 60000, "maxResults": 1_000_000},
            timeout=90,
        )
        if status == 404:
            return {}  # no table: nothing was loaded
        body = json.loads(raw or b"{}") if status == 200 else {}
        rows = body.get("rows", [])
        if status != 200:
            why = f"the count query answered {status}: {raw[:200]!r}"
        elif not body.get("jobComplete") or body.get("pageToken"):
            why = "the count query's answer was unfinished or paged"
        elif int(body.get("totalRows", len(rows))) != len(rows):
            why = f"the count query returned {len(rows)} of {body.get('totalRows')} groups"
        else:
            return {
                (str(uri), int(gen)): int(n)
                for uri, gen, n in ((c["v"] for c in row["f"]) for row in rows)
            }
    return why


def tally(
    generations: dict[str, int], records: list[Stored], counts: dict[tuple[str, int], int]
) -> tuple[int, int, int]:
    """(loaded once, duplicated, lost): each file by its rows in the warehouse and its unit."""
    by_unit = {r.record.unit: r.record for r in records}
    loaded_once = duplicated = lost = 0
    for name, generation in generations.items():
        uri = f"gs://{BUCKET}/{name}"
        rows = counts.get((uri, generation), 0)
        unit = by_unit.get(f"scale:{uri}#{generation}")
        if rows > ROWS_PER_FILE:
            duplicated += 1
        elif rows == ROWS_PER_FILE and unit is not None:
            loaded_once += 1
        else:
            lost += 1
    return loaded_once, duplicated, lost


async def scale(files: int, timeout_s: float) -> int:
    began = time.monotonic()
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="scale-", dir=out))
    with emulator_chain(workdir, project=PROJECT, topic="scale-notifications") as chain:
        firestore, pubsub, gcs, bigquery = chain
        http_ok("POST", f"{gcs.url}/storage/v1/b?project={PROJECT}", {"name": BUCKET})
        generations = await asyncio.to_thread(upload_all, gcs, files)
        print(f"uploaded {files} files in {time.monotonic() - began:.0f}s", flush=True)
        env = service_env(workdir, chain)
        services = [
            Service(f"service-{i}", free_port(), env, workdir / f"s{i}.log") for i in (1, 2)
        ]
        settings = Settings(
            backend="gcp",
            project=PROJECT,
            firestore_emulator_host=firestore.endpoint,
            ledger_collection=COLLECTION,
        )
        os.environ["FIRESTORE_EMULATOR_HOST"] = firestore.endpoint
        store = FirestoreLedgerStore.from_settings(settings)
        front_port = free_port()
        try:
            for service in services:
                await asyncio.to_thread(service.start)
            async with running_front_end(front_port, *(s.port for s in services)):
                work_subscription(pubsub, front_port)
                started = time.monotonic()
                status, body, answer_s = await asyncio.to_thread(sweep, front_port, 1)
                print(f"backfill request answered {status} in {answer_s:.2f}s: {body}", flush=True)
                records, sweeps = await wait_done(store, files, front_port, timeout_s)
                run_s = time.monotonic() - started
                counts = await asyncio.to_thread(warehouse_counts, bigquery)
        finally:
            for service in services:
                service.stop()
            store.client.close()
        if isinstance(counts, str):  # not measured: say so rather than report every file lost
            print(f"could not count the rows loaded: {counts}", flush=True)
            figures = "loaded_once=unknown duplicated=unknown lost=unknown"
            loaded_once, duplicated, lost = 0, 0, files
        else:
            loaded_once, duplicated, lost = tally(generations, records, counts)
            figures = f"loaded_once={loaded_once} duplicated={duplicated} lost={lost}"
        owners = collections.Counter(r.record.owner for r in records)
        share_max = max(owners.values()) / max(1, sum(owners.values()))
        print(f"units per process: {sorted(owners.values(), reverse=True)}; sweeps={sweeps}")
        print(f"backfill request: {answer_s:.2f}s of a {run_s:.0f}s run ({answer_s / run_s:.1%})")
    if lost or duplicated:
        print(f"logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"objects={files} {figures} "
        f"share_max={share_max:.2f} elapsed_s={time.monotonic() - began:.0f}",
        flush=True,
    )
    return 0 if loaded_once == files else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--listing-stub", type=int, metavar="N", help="only a sweep of N stubs")
    args = parser.parse_args()
    if args.listing_stub:
        return asyncio.run(listing_memory(args.listing_stub))
    ensure_installed()
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(scale(args.files, timeout_s=600 + args.files))
    return 1


if __name__ == "__main__":
    sys.exit(main())
