"""The BigQuery emulator's launch-time patches (tests/emulators/bq_launcher.py), in its own Python.

Its bookkeeping upserts from several threads: unpatched, DuckDB 1.4 fails for good within a few
hundred jobs ("Unaligned fetch in validity and main column data for update", then "database has
been invalidated" for every call); patched, every job is saved three times and ends DONE, once.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.emulators import paths
from tests.emulators.paths import ensure_installed

pytestmark = pytest.mark.emulators

JOBS = 1200
THREADS = 4
# Runs under the emulator's Python: the launcher's patches, then JOBS jobs saved PENDING,
# RUNNING and DONE by THREADS threads; prints the errors and the rows per state as JSON.
SCRIPT = """
import json, os, sys, threading
from pathlib import Path
os.environ["DATA_DIR"], os.environ["DEFAULT_PROJECT_ID"] = sys.argv[1], "test"
sys.path.insert(0, str(Path(sys.argv[2]).parent))
import bq_launcher
bq_launcher._patch_duckdb(Path(sys.argv[3]))
bq_launcher._patch_objects()
bq_launcher._patch_upserts()
from local_bigquery.engine import database
from local_bigquery.jobs import runner, store
from local_bigquery.models import JobConfiguration
jobs, threads, errors = int(sys.argv[4]), int(sys.argv[5]), []
def work(first):
    for i in range(first, jobs, threads):
        table = {"projectId": "test", "datasetId": "d", "tableId": "t"}
        load = {"destinationTable": table, "sourceUris": [f"gs://b/{i}.csv"]}
        job = runner._job("test", f"job-{i}", JobConfiguration.model_validate({"load": load}))
        try:
            for state in ("PENDING", "RUNNING", "DONE"):
                store.save(job.replace(status={"state": state}))
        except Exception as exc:
            errors.append(str(exc)[:300])
            return
workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
for w in workers: w.start()
for w in workers: w.join()
counted = "SELECT state, count(*) FROM emulator.jobs GROUP BY 1"
states = [] if errors else database.fetch(counted)
print(json.dumps({"errors": errors, "states": dict(states)}))
"""


def test_concurrent_job_saves_never_invalidate_the_emulators_database(tmp_path: Path) -> None:
    ensure_installed("bigquery")
    done = subprocess.run(
        [
            str(paths.BQEMU_PYTHON),
            "-c",
            SCRIPT,
            str(tmp_path / "data"),
            str(paths.BQ_LAUNCHER),
            str(paths.BQEMU_EXTENSION_DIR),
            str(JOBS),
            str(THREADS),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"errors": [], "states": {"DONE": JOBS}}, done.stderr[-500:]
