"""Session fixtures for the emulators: started together on first use, stopped at session end.

Fake-gcs-server publishes OBJECT_FINALIZE notifications to the Pub/Sub emulator (topic
``NOTIFY_TOPIC``), and the BigQuery emulator reads ``gs://`` URIs from fake-gcs-server's
folder, so the four form the same chain as production. Tests isolate themselves by unique
names (bucket, dataset, collection) rather than by wiping, which keeps them fast.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from service.deploy.permissions import Grant
from service.settings import Settings
from tests.emulators import Emulator, emulator_chain, ensure_installed
from tests.permission_recorder import Recorder, breaches, runner_grants

PROJECT = "test"
NOTIFY_TOPIC = "gcs-notifications"


@dataclass(frozen=True)
class Emulators:
    firestore: Emulator
    pubsub: Emulator
    gcs: Emulator
    bigquery: Emulator

    def settings(self, **overrides: object) -> Settings:
        """Settings for the GCP backend on these emulators."""
        values: dict[str, object] = {
            "backend": "gcp",
            "project": PROJECT,
            "bigquery_endpoint": self.bigquery.url,
            "firestore_emulator_host": self.firestore.endpoint,
            "storage_emulator_host": self.gcs.url,
            "pubsub_emulator_host": self.pubsub.endpoint,
            "ledger_collection": f"ledger-{uuid.uuid4().hex[:8]}",
            "log_format": "text",
        }
        values.update(overrides)
        return Settings(**values)  # type: ignore[arg-type]

    def environ(self) -> dict[str, str]:
        """Variables for a child process (a served app) to use these emulators."""
        return {
            "INGEST_BACKEND": "gcp",
            "INGEST_PROJECT": PROJECT,
            "INGEST_BIGQUERY_ENDPOINT": self.bigquery.url,
            "FIRESTORE_EMULATOR_HOST": self.firestore.endpoint,
            "STORAGE_EMULATOR_HOST": self.gcs.url,
            "PUBSUB_EMULATOR_HOST": self.pubsub.endpoint,
        }

    def serve_environ(
        self, pipelines: Path, ledger_collection: str, data_dir: Path
    ) -> dict[str, str]:
        """This process's variables plus those of an ``ingest serve`` on these emulators."""
        return {
            **os.environ,
            **self.environ(),
            "INGEST_PIPELINES": str(pipelines),
            "INGEST_LEDGER_COLLECTION": ledger_collection,
            "INGEST_DATA_DIR": str(data_dir),
            "INGEST_LOG_FORMAT": "text",
        }


@pytest.fixture(scope="session")
def emulators(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulators]:
    ensure_installed()
    workdir = tmp_path_factory.mktemp("emulators")
    with emulator_chain(workdir, project=PROJECT, topic=NOTIFY_TOPIC) as chain:
        found = Emulators(*chain)
        previous = {k: os.environ.get(k) for k in _client_env(found)}
        # Google's SDKs read these variables themselves; set them for this test session only.
        os.environ.update(_client_env(found))
        try:
            yield found
        finally:
            for key, value in previous.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def _client_env(found: Emulators) -> dict[str, str]:
    return {
        "FIRESTORE_EMULATOR_HOST": found.firestore.endpoint,
        "STORAGE_EMULATOR_HOST": found.gcs.url,
        "PUBSUB_EMULATOR_HOST": found.pubsub.endpoint,
    }


@pytest.fixture(scope="session")
def api_calls(emulators: Emulators) -> Iterator[Recorder]:
    """Every Google API method the GCP adapters call from here on, with who calls it."""
    recorder = Recorder()
    patch = pytest.MonkeyPatch()
    recorder.install(patch)
    try:
        yield recorder
    finally:
        patch.undo()


@pytest.fixture(scope="session")
def plan_grants(tmp_path_factory: pytest.TempPathFactory) -> frozenset[Grant]:
    return runner_grants(tmp_path_factory.mktemp("plan"))


@pytest.fixture(autouse=True)
def permission_contract(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fails a test on the emulators whose adapters called a Google API method that the
    permission table does not list, or that the runner calls without the plan granting it."""
    if "emulators" not in request.fixturenames:
        yield
        return
    recorder: Recorder = request.getfixturevalue("api_calls")
    grants: frozenset[Grant] = request.getfixturevalue("plan_grants")
    start = len(recorder.calls)
    yield
    problems = breaches(recorder.calls[start:], grants)
    if problems:
        pytest.fail("permission contract:\n" + "\n".join(sorted(set(problems))))


@pytest.fixture
def unique() -> str:
    """A short name unique to this test: buckets, datasets and collections use it."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def gcp_settings(emulators: Emulators, tmp_path: Path) -> Settings:
    return emulators.settings(data_dir=tmp_path / "data")
