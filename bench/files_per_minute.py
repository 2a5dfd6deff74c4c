"""How many one-row files a minute one table takes, on each load path, through the emulators.

Emulated GCS (fake-gcs-server), the Firestore ledger and the BigQuery emulator (REST for load
jobs, gRPC for the Write API), driven by the service's own wiring (``build_backends``,
``build_ingestor``): each file is one event handled to the end (claim, read, load or
stream + commit, ledger completion), ``--concurrency`` at a time. Pub/Sub delivery is left out:
it adds the same to both paths. The emulators answer faster than BigQuery does and have no
quotas, so the figures are the service's own ceiling, not Google's; the README says which real
quota each path meets first.

    .venv/bin/python bench/files_per_minute.py [--files 60] [--concurrency 4]

Ends with: files_per_minute_job=J files_per_minute_stream=S
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service.models import EventMeta, ObjectFinalized, ObjectRef  # noqa: E402
from service.results import Status  # noqa: E402
from service.settings import Settings  # noqa: E402
from service.wiring import build_backends, build_ingestor, load_config  # noqa: E402
from tests.emulators import Emulator, emulator_chain, ensure_installed  # noqa: E402
from tests.emulators.process import http_ok  # noqa: E402

PROJECT = "test"
BUCKET = "rate-landing"
SCHEMA = [{"name": "id", "type": "INTEGER", "mode": "REQUIRED"}]
PIPELINE = """
[[pipelines]]
name = "{load}"
bucket = "{bucket}"
prefix = "{load}/"
table = "rate.{load}"
schema = "schema.json"
load = "{load}"
"""


def upload(gcs: Emulator, name: str, data: bytes) -> None:
    query = urllib.parse.urlencode({"uploadType": "media", "name": name})
    http_ok("POST", f"{gcs.url}/upload/storage/v1/b/{BUCKET}/o?{query}", data)


async def rate(load: str, files: int, concurrency: int, settings: Settings) -> float:
    """Files a minute: ``files`` one-row files of the ``load`` path, handled to the end."""
    backends = build_backends(settings)
    ingestor = build_ingestor(settings, backends, load_config(settings))
    names = [f"{load}/f{i:05d}.csv" for i in range(files)]
    infos = [await backends.store.stat(ObjectRef(BUCKET, name)) for name in names]
    pending = asyncio.Queue[int]()
    for i in range(files):
        pending.put_nowait(i)
    statuses: list[Status] = []

    async def worker() -> None:
        while not pending.empty():
            i = pending.get_nowait()
            meta = EventMeta(f"{load}-{i}", "google.cloud.storage.object.v1.finalized", "bench")
            outcome = await ingestor.handle(ObjectFinalized(meta, infos[i]))
            statuses.append(outcome.status)

    started = time.perf_counter()
    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        await backends.close()
    elapsed = time.perf_counter() - started
    loaded = statuses.count(Status.LOADED)
    print(f"{load:>6}: {loaded}/{files} loaded in {elapsed:.1f}s, {60 * loaded / elapsed:.0f}/min")
    return 60 * loaded / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    ensure_installed()
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="rate-", dir=out))
    try:
        with emulator_chain(workdir, project=PROJECT, topic="rate-notifications") as chain:
            firestore, _, gcs, bigquery = chain
            # Google's Firestore client finds its emulator through the environment only.
            os.environ["FIRESTORE_EMULATOR_HOST"] = firestore.endpoint
            (workdir / "schema.json").write_text(json.dumps(SCHEMA))
            pipelines = "".join(PIPELINE.format(load=p, bucket=BUCKET) for p in ("job", "stream"))
            (workdir / "pipelines.toml").write_text(pipelines)
            http_ok("POST", f"{gcs.url}/storage/v1/b?project={PROJECT}", {"name": BUCKET})
            for load in ("job", "stream"):
                for i in range(args.files):
                    upload(gcs, f"{load}/f{i:05d}.csv", f"id\n{i}\n".encode())
            settings = Settings(
                backend="gcp",
                project=PROJECT,
                bigquery_endpoint=bigquery.url,
                bigquery_write_endpoint=f"127.0.0.1:{bigquery.grpc_port}",
                firestore_emulator_host=firestore.endpoint,
                storage_emulator_host=gcs.url,
                pipelines_file=workdir / "pipelines.toml",
                ledger_collection=f"rate-{uuid.uuid4().hex[:8]}",
                data_dir=workdir / "data",
                log_format="text",
            )
            figures = {
                load: asyncio.run(rate(load, args.files, args.concurrency, settings))
                for load in ("job", "stream")
            }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"files_per_minute_job={figures['job']:.0f} files_per_minute_stream={figures['stream']:.0f}"
    )


if __name__ == "__main__":
    main()
