"""``ingest serve``: the real console script under Hypercorn, and its start-up errors."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.test_cli_common import Workspace, make_workspace, run_cli, serving

INGEST = str(Path(sys.executable).parent / "ingest")


@pytest.fixture
def space(tmp_path: Path) -> Workspace:
    return make_workspace(tmp_path)


def test_serves_events_health_and_status_then_stops_on_sigterm(space: Workspace) -> None:
    with serving(space) as server:
        assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
        assert httpx.get(f"{server.url}/readyz").status_code == 200
        status = httpx.get(f"{server.url}/status")
        assert status.status_code == 200
        assert "Ingestion status" in status.text
        server.terminate()
        assert server.wait_exit(30) == 0


def run_ingest(space: Workspace, *args: str, **env: str | None) -> subprocess.CompletedProcess[str]:
    variables = {k: v for k, v in space.env(**env).items() if v is not None}
    variables |= {"PATH": os.environ["PATH"], "HOME": str(space.root)}
    return subprocess.run(
        [INGEST, *args], env=variables, capture_output=True, text=True, timeout=60, check=False
    )


def test_a_missing_pipelines_file_stops_start_up_with_one_line(space: Workspace) -> None:
    result = run_ingest(space, "serve", "--port", "0", INGEST_PIPELINES=str(space.root / "x.toml"))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("Error: ")
    assert "pipelines file not found" in result.stderr


def test_an_empty_pipelines_file_stops_start_up_with_one_line(space: Workspace) -> None:
    space.pipelines.write_text("")
    result = run_ingest(space, "serve", "--port", "0")
    assert result.returncode == 1
    assert (
        result.stderr.strip() == f"Error: {space.pipelines}: no pipelines: add a [[pipelines]]"
        " table (with none, every event would be acknowledged as ignored)"
    )


def test_gcp_without_a_project_stops_with_one_line(space: Workspace) -> None:
    result = run_ingest(space, "serve", "--gcp", "--port", "0", INGEST_PROJECT=None)
    assert result.returncode == 1
    assert result.stderr.strip() == "Error: INGEST_PROJECT is required when INGEST_BACKEND=gcp"


@pytest.mark.parametrize(
    ("where", "reason"), [("a-file", "File exists"), ("a-file/below", "Not a directory")]
)
def test_an_unusable_data_folder_stops_start_up_with_one_line(
    space: Workspace, where: str, reason: str
) -> None:
    (space.root / "a-file").write_text("not a folder")
    data = space.root / where
    result = run_ingest(space, "serve", "--port", "0", INGEST_DATA_DIR=str(data))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: INGEST_DATA_DIR={data}: not a writable folder ({reason})"
    ]


def test_help_names_the_backend_flags() -> None:
    result = run_cli(["serve", "--help"], {})
    assert result.exit_code == 0
    for flag in ("--host", "--port", "--embedded", "--gcp", "INGEST_HOST", "PORT"):
        assert flag in result.output


def test_a_busy_port_stops_start_up_with_one_line(space: Workspace) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_ingest(space, "serve", "--port", str(port))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: cannot listen on 127.0.0.1:{port} (Address already in use): another server is"
        " listening there: stop it, or pick another port (--port N, PORT=N)"
    ]
    assert not space.data_dir.exists()  # stopped before anything was opened


# No Google credentials anywhere: none in the environment or HOME, and the metadata server
# (asked on Google Cloud only) neither looked for nor reachable but on a closed local port.
NO_CREDENTIALS = {
    "INGEST_PROJECT": "p",
    "NO_GCE_CHECK": "true",
    "GCE_METADATA_HOST": "127.0.0.1:9",
    "GCE_METADATA_IP": "127.0.0.1:9",
}


@pytest.mark.parametrize("args", [["serve", "--gcp", "--port", "0"], ["tables"]])
def test_gcp_without_credentials_is_one_line_saying_how_to_get_them(
    space: Workspace, args: list[str]
) -> None:
    result = run_ingest(space, *args, INGEST_BACKEND="gcp", **NO_CREDENTIALS)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Error: no Google credentials found: run `gcloud auth application-default login`, or"
        " set GOOGLE_APPLICATION_CREDENTIALS to a service account key file (on Cloud Run the"
        " service's own account is used); or use the embedded backend (--embedded,"
        " INGEST_BACKEND=embedded)"
    ]
