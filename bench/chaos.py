"""End-to-end reliability under faults, on the real emulator chain.

upload -> fake-gcs-server -> notification -> Pub/Sub emulator -> two push subscriptions -> a
front end each (bench/frontend.py: 503 while its service is down, as Cloud Run's does) -> two
service processes (so every event arrives twice, concurrently) -> Firestore ledger + BigQuery.
While files flow: SIGKILL a service at random moments and restart it, fail 10% of object-store
and warehouse calls (INGEST_FAULT_RATE), and publish 20% of the notifications a second time.
Then wait until the ledger is quiet and check every file is accounted for, exactly once.

``--load stream``: the pipeline loads through the emulator's gRPC Write API instead of load
jobs, and every kill lands between finalize and commit: the faulty Write API logs "holding
commit" once the ledger says "committing" and holds the commit back; the monkey waits for that
line in the victim's log, then kills it.

    .venv/bin/python bench/chaos.py [--files N] [--seed S] [--quick] [--load job|stream]

Ends with: files=N loaded_once=A duplicated=B lost=C stuck=D elapsed_s=E
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gzip
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.frontend import running_front_end  # noqa: E402
from service.adapters.gcp.firestore import FirestoreLedgerStore  # noqa: E402
from service.models import Stored, UnitState  # noqa: E402
from service.settings import Settings  # noqa: E402
from tests.emulators import Emulator, emulator_chain, ensure_installed  # noqa: E402
from tests.emulators.process import free_port, http, http_json, http_ok, terminate  # noqa: E402

PROJECT = "test"
TOPIC = "chaos-notifications"
BUCKET = "chaos-landing"
DATASET_TABLE = "chaos.rows"
COLLECTION = "chaos-ledger"
SWEEP_ID = "chaos-sweep-"
SWEEP_AFTER_STALL_S = 15.0
# Units each service runs at once: the BigQuery emulator's DuckDB has died ("database has been
# invalidated") under 2 services x 4 concurrent loads in a 200-file run.
UNITS_IN_FLIGHT = 2
LEASE_SECONDS = 12
SCHEMA = [
    {"name": "id", "type": "INTEGER", "mode": "REQUIRED"},
    {"name": "value", "type": "FLOAT"},
    {"name": "label", "type": "STRING"},
]
PIPELINES = f"""
[[pipelines]]
name = "chaos"
bucket = "{BUCKET}"
prefix = "in/"
table = "{DATASET_TABLE}"
schema = "schema.json"
load = "{{load}}"

[pipelines.bad_rows]
max_ratio = 0.1
"""


@dataclass(frozen=True)
class PlannedFile:
    name: str
    data: bytes
    rows: int
    bad: int

    @property
    def rejected(self) -> bool:
        return self.rows > 0 and self.bad / self.rows > 0.1

    @property
    def good(self) -> int:
        return 0 if self.rejected else self.rows - self.bad


def plan_files(count: int, rng: random.Random) -> list[PlannedFile]:
    """Mixed sizes, some gzip, some bad rows under the threshold, some over, a few empty."""
    planned = []
    for index in range(count):
        kind = rng.random()
        rows = rng.choice([5, 50, 500, 5000])
        bad = 0
        if kind < 0.04:
            rows = 0
        elif kind < 0.24:
            bad = max(1, rows // 20)  # 5%: under the 10% threshold
        elif kind < 0.34:
            bad = rows // 2 + 1  # over the threshold: the file is rejected whole
        gz = rng.random() < 0.25
        data = _csv(index, rows, bad, rng)
        name = f"in/f{index:04d}.csv"
        if gz:
            data, name = gzip.compress(data), name + ".gz"
        planned.append(PlannedFile(name, data, rows, bad))
    return planned


def _csv(index: int, rows: int, bad: int, rng: random.Random) -> bytes:
    if rows == 0:
        return b""
    bad_rows = set(rng.sample(range(rows), bad))
    out = io.StringIO()
    out.write("id,value,label\n")
    for row in range(rows):
        value = "oops" if row in bad_rows else f"{rng.random() * 1000:.3f}"
        out.write(f"{index * 100_000 + row},{value},file {index} row {row}\n")
    return out.getvalue().encode()


@dataclass
class Service:
    name: str
    port: int
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    kills: int = 0

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [str(ROOT / ".venv/bin/ingest"), "serve", "--gcp", "--port", str(self.port)],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=ROOT,
        )
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if http("GET", f"http://127.0.0.1:{self.port}/healthz", timeout=1)[0] == 200:
                    return
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited; see {self.log_path}")
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not answer /healthz in 60 s")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
            self.kills += 1

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            terminate(self.process)


@dataclass
class Run:
    files: list[PlannedFile]
    gcs: Emulator
    pubsub: Emulator
    bigquery: Emulator
    services: list[Service] = field(default_factory=list)
    generations: dict[str, int] = field(default_factory=dict)
    replays: int = 0
    sweeps: int = 0
    kills_at_commit: int = 0


def create_bucket(gcs: Emulator) -> None:
    http_ok("POST", f"{gcs.url}/storage/v1/b?project={PROJECT}", {"name": BUCKET})


def upload(gcs: Emulator, planned: PlannedFile) -> dict[str, object]:
    query = urllib.parse.urlencode({"uploadType": "media", "name": planned.name})
    raw = http_ok("POST", f"{gcs.url}/upload/storage/v1/b/{BUCKET}/o?{query}", planned.data)
    resource: dict[str, object] = json.loads(raw)
    return resource


def push_subscription(pubsub: Emulator, name: str, port: int) -> None:
    http_ok(
        "PUT",
        f"{pubsub.url}/v1/projects/{PROJECT}/subscriptions/{name}",
        {
            "topic": f"projects/{PROJECT}/topics/{TOPIC}",
            "pushConfig": {"pushEndpoint": f"http://127.0.0.1:{port}/"},
            "ackDeadlineSeconds": 60,
            "retryPolicy": {"minimumBackoff": "1s", "maximumBackoff": "4s"},
        },
    )


def republish(pubsub: Emulator, resource: dict[str, object]) -> None:
    """The same notification again, as GCS would send it on a redelivery."""
    attributes = {
        "payloadFormat": "JSON_API_V1",
        "eventType": "OBJECT_FINALIZE",
        "bucketId": str(resource["bucket"]),
        "objectId": str(resource["name"]),
        "objectGeneration": str(resource["generation"]),
    }
    data = base64.b64encode(json.dumps(resource).encode()).decode()
    http_json(
        "POST",
        f"{pubsub.url}/v1/projects/{PROJECT}/topics/{TOPIC}:publish",
        {"messages": [{"data": data, "attributes": attributes}]},
    )


async def feed(run: Run, rng: random.Random, spread_s: float) -> None:
    """Upload every file (and re-publish 20%) over ``spread_s`` seconds."""
    pause = spread_s / max(1, len(run.files))
    for planned in run.files:
        resource = await asyncio.to_thread(upload, run.gcs, planned)
        run.generations[planned.name] = int(str(resource["generation"]))
        if rng.random() < 0.2:
            await asyncio.to_thread(republish, run.pubsub, resource)
            run.replays += 1
        await asyncio.sleep(pause)


async def chaos_monkey(
    run: Run, rng: random.Random, kills: int, window_s: float, at_commit: bool = False
) -> None:
    """SIGKILL a random service ``kills`` times within the window, restarting each;
    ``at_commit``: each kill goes to the first service that holds a commit (finalized, the
    ledger "committing", no commit sent), at moments while files still arrive."""
    last = window_s - 5 if at_commit else window_s
    moments = sorted(rng.uniform(1.0, max(1.0, last)) for _ in range(kills))
    began = time.monotonic()
    for moment in moments:
        await asyncio.sleep(max(0.0, moment - (time.monotonic() - began)))
        victim = rng.choice(run.services)
        where = ""
        if at_commit:
            holder = await holding_commit(run.services, timeout_s=window_s)
            run.kills_at_commit += holder is not None
            victim = holder or victim
            where = " between finalize and commit" if holder else " (no commit held: at random)"
        victim.kill()
        print(f"  t={time.monotonic() - began:5.1f}s SIGKILL {victim.name}{where}", flush=True)
        await asyncio.sleep(rng.uniform(0.5, 2.0))
        await asyncio.to_thread(victim.start)


async def holding_commit(services: list[Service], timeout_s: float) -> Service | None:
    """The first service to log that it holds a commit back; None after ``timeout_s``."""
    seen = {s.name: s.log_path.stat().st_size for s in services}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for service in services:
            with service.log_path.open("rb") as log:
                log.seek(seen[service.name])
                if b"holding commit" in log.read():
                    return service
        await asyncio.sleep(0.02)
    return None


async def wait_quiet(
    store: FirestoreLedgerStore, run: Run, fronts: list[int], timeout_s: float
) -> list[Stored]:
    """Until every unit is final and stays so for two polls in a row (or the time is up).

    When progress stalls, send the pipeline a Scheduler sweep, the service's own catch-up for
    lost events: the Pub/Sub emulator drops some nacked messages for good (see the note in
    bench/frontend.py), where production Pub/Sub would redeliver them.
    """
    expected = len(run.files)
    deadline = time.monotonic() + timeout_s
    settled = 0
    last_change = time.monotonic()
    previous: tuple[int, int] = (-1, -1)
    records: list[Stored] = []
    while time.monotonic() < deadline:
        records = await store.list(limit=expected * 2 + 100)
        final = [r for r in records if r.record.state is not UnitState.IN_PROGRESS]
        settled = settled + 1 if len(final) >= expected and len(final) == len(records) else 0
        if settled >= 2:
            break
        if (len(final), len(records)) != previous:
            previous, last_change = (len(final), len(records)), time.monotonic()
        elif time.monotonic() - last_change > SWEEP_AFTER_STALL_S:
            await asyncio.to_thread(sweep, run, fronts)
            last_change = time.monotonic()
        await asyncio.sleep(2.0)
    return records


def sweep(run: Run, fronts: list[int]) -> None:
    """POST a Scheduler sweep request (as a push delivers it) to one of the front ends."""
    run.sweeps += 1
    payload = base64.b64encode(json.dumps({"pipeline": "chaos"}).encode()).decode()
    envelope = {
        "subscription": f"projects/{PROJECT}/subscriptions/scheduler",
        "message": {"data": payload, "messageId": f"{SWEEP_ID}{run.sweeps}", "attributes": {}},
    }
    port = fronts[run.sweeps % len(fronts)]
    with contextlib.suppress(OSError):
        status, _ = http("POST", f"http://127.0.0.1:{port}/", envelope, timeout=120)
        print(f"  stalled: sweep {run.sweeps} answered {status}", flush=True)


def loaded_rows(bigquery: Emulator, table: str = DATASET_TABLE) -> dict[tuple[str, int], int]:
    sql = (
        "SELECT _source_uri AS uri, _source_generation AS gen, COUNT(*) AS n "
        f"FROM `{PROJECT}.{table}` GROUP BY 1, 2"
    )
    status, raw = http(
        "POST",
        f"{bigquery.url}/bigquery/v2/projects/{PROJECT}/queries",
        {"query": sql, "useLegacySql": False, "timeoutMs": 60000},
        timeout=90,
    )
    if status == 404:
        return {}  # no table: nothing was loaded
    if status != 200:
        raise RuntimeError(f"count query answered {status}: {raw[:300]!r}")
    body = json.loads(raw)
    counts = {}
    for row in body.get("rows", []):
        uri, gen, n = (cell["v"] for cell in row["f"])
        counts[(str(uri), int(gen))] = int(n)
    return counts


@dataclass(frozen=True)
class Verdict:
    loaded_once: int
    duplicated: int
    lost: int
    stuck: int
    problems: list[str]


def verdict(run: Run, records: list[Stored], counts: dict[tuple[str, int], int]) -> Verdict:
    by_unit = {r.record.unit: r.record for r in records}
    loaded_once = duplicated = lost = 0
    problems: list[str] = []
    stuck = sum(1 for r in records if r.record.state is UnitState.IN_PROGRESS)
    for planned in run.files:
        generation = run.generations[planned.name]
        uri = f"gs://{BUCKET}/{planned.name}"
        unit = by_unit.get(f"chaos:{uri}#{generation}")
        rows = counts.get((uri, generation), 0)
        if rows > planned.good:
            duplicated += 1
            problems.append(f"{planned.name}: {rows} rows, expected {planned.good}")
            continue
        expected_state = UnitState.FAILED if planned.rejected else UnitState.COMPLETED
        if unit is None or unit.state is not expected_state or rows < planned.good:
            lost += 1
            state = unit.state.value if unit else "no ledger record"
            problems.append(f"{planned.name}: {rows}/{planned.good} rows, {state}")
            continue
        result = unit.result
        # A file rejected whole: its bad rows are quarantined, its good ones counted rejected.
        if result is not None and result.rows_read != (
            result.rows_loaded + result.rows_quarantined + result.rows_rejected
        ):
            problems.append(f"{planned.name}: rows read != loaded + quarantined + rejected")
            lost += 1
            continue
        if planned.rejected and (result is None or not result.quarantine_uri):
            problems.append(f"{planned.name}: rejected without a quarantine record")
            lost += 1
            continue
        loaded_once += 1
    return Verdict(loaded_once, duplicated, lost, stuck, problems)


def service_env(
    workdir: Path, firestore: Emulator, gcs: Emulator, bq: Emulator, load: str
) -> dict[str, str]:
    (workdir / "schema.json").write_text(json.dumps(SCHEMA))
    (workdir / "pipelines.toml").write_text(PIPELINES.replace("{load}", load))
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}
    env.update(
        {
            "INGEST_BACKEND": "gcp",
            "INGEST_PROJECT": PROJECT,
            "INGEST_BIGQUERY_ENDPOINT": bq.url,
            "INGEST_PIPELINES": str(workdir / "pipelines.toml"),
            "INGEST_LEDGER_COLLECTION": COLLECTION,
            "INGEST_FAULT_RATE": "0.1",
            "INGEST_ACK_DEADLINE_SECONDS": str(LEASE_SECONDS),
            "INGEST_LOG_FORMAT": "json",
            "INGEST_MAX_UNITS_IN_FLIGHT": str(UNITS_IN_FLIGHT),
            "FIRESTORE_EMULATOR_HOST": firestore.endpoint,
            "STORAGE_EMULATOR_HOST": gcs.url,
        }
    )
    if load == "stream":
        env["INGEST_BIGQUERY_WRITE_ENDPOINT"] = f"127.0.0.1:{bq.grpc_port}"
    return env


async def chaos(
    files: int, seed: int, kills: int, spread_s: float, timeout_s: float, *, load: str = "job"
) -> Verdict:
    rng = random.Random(seed)
    began = time.monotonic()
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="chaos-", dir=out))
    with emulator_chain(workdir, project=PROJECT, topic=TOPIC) as chain:
        firestore, pubsub, gcs, bigquery = chain
        os.environ["FIRESTORE_EMULATOR_HOST"] = firestore.endpoint
        env = service_env(workdir, firestore, gcs, bigquery, load)
        run = Run(plan_files(files, rng), gcs, pubsub, bigquery)
        create_bucket(gcs)
        for i in (1, 2):
            run.services.append(Service(f"service-{i}", free_port(), env, workdir / f"s{i}.log"))
        fronts = contextlib.AsyncExitStack()
        front_ports: list[int] = []
        try:
            for service in run.services:
                await asyncio.to_thread(service.start)
                front_port = free_port()
                await fronts.enter_async_context(running_front_end(front_port, service.port))
                push_subscription(pubsub, f"push-{service.name}", front_port)
                front_ports.append(front_port)
            print(f"emulators and services up in {time.monotonic() - began:.1f}s", flush=True)
            await asyncio.gather(
                feed(run, rng, spread_s),
                chaos_monkey(run, rng, kills, spread_s + 5, at_commit=load == "stream"),
            )
            print(f"uploaded {files} files, re-published {run.replays}", flush=True)
            settings = Settings(
                backend="gcp",
                project=PROJECT,
                firestore_emulator_host=firestore.endpoint,
                ledger_collection=COLLECTION,
            )
            store = FirestoreLedgerStore.from_settings(settings)
            records = await wait_quiet(store, run, front_ports, timeout_s)
            try:
                counts = await asyncio.to_thread(loaded_rows, bigquery)
            except RuntimeError as exc:
                # The BigQuery emulator can die under this load (DuckDB "database has been
                # invalidated"); every file then counts as lost, and the run says why.
                print(f"warehouse unreadable at the end: {str(exc)[:200]}", flush=True)
                counts = {}
            store.client.close()
        finally:
            for service in run.services:
                service.stop()
            await fronts.aclose()
        result = verdict(run, records, counts)
        kills_done = sum(s.kills for s in run.services)
        read = sum(r.record.result.rows_read for r in records if r.record.result)
        loaded = sum(r.record.result.rows_loaded for r in records if r.record.result)
        swept = sum(1 for r in records if (r.record.event_id or "").startswith(SWEEP_ID))
        print(
            f"kills={kills_done} kills_between_finalize_and_commit={run.kills_at_commit}"
            f" replays={run.replays} rows_read={read} rows_loaded={loaded}"
        )
        print(f"sweeps={run.sweeps} units_finished_by_a_sweep={swept}")
        for problem in result.problems[:20]:
            print(f"  problem: {problem}")
    if result.problems:
        print(f"logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.monotonic() - began
    print(
        f"files={files} loaded_once={result.loaded_once} duplicated={result.duplicated} "
        f"lost={result.lost} stuck={result.stuck} elapsed_s={elapsed:.0f}",
        flush=True,
    )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="40 files; well under 5 minutes")
    parser.add_argument("--load", choices=("job", "stream"), default="job")
    args = parser.parse_args()
    ensure_installed()
    files = 40 if args.quick else args.files
    spread = max(10.0, files * 0.15)
    result = asyncio.run(
        chaos(files, args.seed, args.kills, spread, timeout_s=180 + files, load=args.load)
    )
    clean = result.duplicated == result.lost == result.stuck == 0
    return 0 if clean and not result.problems else 1


if __name__ == "__main__":
    sys.exit(main())
