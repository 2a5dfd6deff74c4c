"""Start each emulator on a free port of 127.0.0.1 and wait until it really answers."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from . import paths
from .process import (
    HOST,
    START_TIMEOUT,
    Emulator,
    EmulatorError,
    free_port,
    http,
    spawn,
    start_with_retries,
    wait_ready,
)

if TYPE_CHECKING:
    from pathlib import Path


def _require(name: str) -> None:
    problems = paths.missing(name)
    if problems:
        raise paths.EmulatorNotInstalledError(
            f"cannot start the {name} emulator: " + "; ".join(problems)
        )


def _answers(url: str, *, status: int = 200, body: bytes | None = None) -> bool:
    code, raw = http("GET", url, timeout=2.0)
    return code == status and (body is None or raw.strip() == body)


def start_firestore(workdir: Path, *, timeout: float = START_TIMEOUT) -> Emulator:
    """Firestore emulator (the jar, run directly). Ready when ``GET /`` answers ``Ok``."""
    _require("firestore")
    java = paths.java()
    assert java is not None

    def start(port: int) -> Emulator:
        began = time.monotonic()
        log_path = workdir / "firestore.log"
        process = spawn(
            "firestore",
            [
                java,
                "-Duser.language=en",
                "-cp",
                paths.FIRESTORE_JAR,
                "com.google.cloud.datastore.emulator.firestore.CloudFirestore",
                "start",
                f"--host={HOST}",
                f"--port={port}",
            ],
            log_path=log_path,
            cwd=workdir / "firestore",
        )
        wait_ready(
            "firestore",
            process,
            log_path,
            lambda: _answers(f"http://{HOST}:{port}/", body=b"Ok"),
            hint=paths.HINT_FIRESTORE,
            timeout=timeout,
        )
        return Emulator(
            "firestore", HOST, port, process, log_path, startup_seconds=time.monotonic() - began
        )

    return start_with_retries(start)


def start_pubsub(workdir: Path, *, timeout: float = START_TIMEOUT) -> Emulator:
    """Pub/Sub emulator. Ready when its log says it listens on our port and REST answers.

    A port clash leaves its JVM alive but serving nothing of ours, hence the log check.
    """
    _require("pubsub")
    java, jar = paths.java(), paths.pubsub_jar()
    assert java is not None and jar is not None

    def start(port: int) -> Emulator:
        began = time.monotonic()
        log_path = workdir / "pubsub.log"
        process = spawn(
            "pubsub",
            [java, "-jar", jar, f"--host={HOST}", f"--port={port}"],
            log_path=log_path,
            cwd=workdir / "pubsub",
        )
        marker = f"Server started, listening on {port}".encode()

        def ready() -> bool:
            return marker in log_path.read_bytes() and _answers(
                f"http://{HOST}:{port}/v1/projects/readiness-check/topics"
            )

        wait_ready("pubsub", process, log_path, ready, hint=paths.HINT_PUBSUB, timeout=timeout)
        return Emulator(
            "pubsub", HOST, port, process, log_path, startup_seconds=time.monotonic() - began
        )

    return start_with_retries(start)


def start_gcs(
    workdir: Path,
    *,
    pubsub: Emulator | None = None,
    project: str = "test",
    topic: str | None = None,
    timeout: float = START_TIMEOUT,
) -> Emulator:
    """fake-gcs-server with its filesystem backend in ``workdir/gcs`` (``Emulator.data_dir``).

    Objects are stored as ``data_dir/BUCKET/OBJECT``, the layout local-bigquery reads
    ``gs://`` URIs from (``start_bigquery(gcs_root=emu.data_dir)``).
    With ``pubsub`` and ``topic``, every finished upload publishes an OBJECT_FINALIZE
    notification to ``projects/PROJECT/topics/TOPIC`` on that Pub/Sub emulator; the topic is
    created there if missing.
    """
    if (pubsub is None) != (topic is None):
        raise ValueError("start_gcs: give both pubsub= and topic= for notifications, or neither")
    _require("gcs")
    binary = paths.fake_gcs_binary()
    assert binary is not None
    root = workdir / "gcs"
    root.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.pop("PUBSUB_EMULATOR_HOST", None)
    events: list[str] = []
    if pubsub is not None and topic is not None:
        env["PUBSUB_EMULATOR_HOST"] = pubsub.endpoint
        events = [
            "-event.pubsub-project-id",
            project,
            "-event.pubsub-topic",
            topic,
            "-event.list",
            "finalize",
        ]
        status, raw = http("PUT", f"{pubsub.url}/v1/projects/{project}/topics/{topic}", {})
        if status not in (200, 409):
            raise EmulatorError(
                f"could not create topic {topic} on Pub/Sub: {status} {raw[:300]!r}"
            )

    def start(port: int) -> Emulator:
        began = time.monotonic()
        log_path = workdir / "gcs.log"
        url = f"http://{HOST}:{port}"
        process = spawn(
            "gcs",
            [
                binary,
                "-scheme",
                "http",
                "-host",
                HOST,
                "-port",
                str(port),
                "-external-url",
                url,
                "-backend",
                "filesystem",
                "-filesystem-root",
                root,
                *events,
            ],
            log_path=log_path,
            cwd=workdir,
            env=env,
        )
        wait_ready(
            "gcs",
            process,
            log_path,
            lambda: _answers(f"{url}/storage/v1/b"),
            hint=paths.HINT_GCS,
            timeout=timeout,
        )
        return Emulator(
            "gcs",
            HOST,
            port,
            process,
            log_path,
            data_dir=root,
            startup_seconds=time.monotonic() - began,
        )

    return start_with_retries(start)


# local-bigquery's settings come from environment variables of these names too (pydantic-settings):
# keep the caller's environment from steering it (STORAGE_EMULATOR_HOST would make it read gs://
# through DuckDB's httpfs extension, which is not installed and cannot be downloaded offline).
_BQ_SETTINGS = {
    "BIGQUERY_PORT",
    "BIGQUERY_HOST",
    "GRPC_PORT",
    "DATA_DIR",
    "DEFAULT_PROJECT_ID",
    "DEFAULT_DATASET_ID",
    "CALLER",
    "GROUPS",
    "POSTGRES_CONNECTION_ID",
    "GCS_LOCAL_ROOT",
    "STORAGE_EMULATOR_HOST",
    "POSTGRES_URI",
}
_PYTHON_ENV = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"}


def start_bigquery(
    workdir: Path,
    *,
    gcs_root: Path | None = None,
    project: str = "test",
    timeout: float = START_TIMEOUT,
) -> Emulator:
    """local-bigquery (own Python 3.13 venv, via bq_launcher.py), data in ``workdir/bigquery``.

    With ``gcs_root`` (e.g. ``start_gcs(...).data_dir``) loads from ``gs://B/O`` read the file
    ``gcs_root/B/O``. Ready when ``GET /bigquery/v2/projects/PROJECT/datasets`` answers 200.
    Its built-in default dataset ``local`` is deleted once ready (if empty), so it starts empty.
    Use it with ``client_options={"api_endpoint": emu.url}`` and ``AnonymousCredentials``.
    """
    _require("bigquery")
    data_dir = workdir / "bigquery"
    env = {k: v for k, v in os.environ.items() if k.upper() not in _BQ_SETTINGS | _PYTHON_ENV}
    env["PYTHONUNBUFFERED"] = "1"
    if gcs_root is not None:
        env["GCS_LOCAL_ROOT"] = str(gcs_root.resolve())

    def start(port: int) -> Emulator:
        began = time.monotonic()
        grpc_port = free_port()
        log_path = workdir / "bigquery.log"
        url = f"http://{HOST}:{port}"
        process = spawn(
            "bigquery",
            [
                paths.BQEMU_PYTHON,
                paths.BQ_LAUNCHER,
                "--extension-dir",
                paths.BQEMU_EXTENSION_DIR,
                "serve",
                "--host",
                HOST,
                "--port",
                str(port),
                "--grpc-port",
                str(grpc_port),
                "--project",
                project,
                "--data-dir",
                data_dir,
            ],
            log_path=log_path,
            cwd=workdir,
            env=env,
        )
        wait_ready(
            "bigquery",
            process,
            log_path,
            lambda: _answers(f"{url}/bigquery/v2/projects/{project}/datasets"),
            hint=paths.HINT_BIGQUERY,
            timeout=timeout,
            clash_markers=(
                "Address already in use",
                "address already in use",
                "Failed to bind",
                "error while attempting to bind",
            ),
        )
        # Drop the emulator's own default dataset (only if empty: keeps persisted data safe).
        http("DELETE", f"{url}/bigquery/v2/projects/{project}/datasets/local")
        return Emulator(
            "bigquery",
            HOST,
            port,
            process,
            log_path,
            data_dir=data_dir,
            grpc_port=grpc_port,
            startup_seconds=time.monotonic() - began,
        )

    return start_with_retries(start)
