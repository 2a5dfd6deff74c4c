from __future__ import annotations

from pathlib import Path

import pytest

from service.errors import ConfigError
from service.settings import Settings, reference


def test_defaults_with_no_environment() -> None:
    settings = Settings.from_env({})
    assert settings.backend == "embedded"
    assert settings.data_dir == Path(".ingest-data")
    assert settings.max_body_bytes == 32 * 1024 * 1024
    assert (settings.replay_url, settings.replay_concurrency, settings.replay_retries) == (
        None,
        4,
        3,
    )
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)


def test_reads_prefixed_variables() -> None:
    settings = Settings.from_env(
        {
            "INGEST_BACKEND": "gcp",
            "INGEST_PROJECT": "p1",
            "INGEST_MAX_BODY_BYTES": "1024",
            "INGEST_AUTH_ALLOWED_EMAILS": "a@x.iam.gserviceaccount.com, b@x",
            "INGEST_STATUS_AUDIENCE": "https://status.example.com",
            "INGEST_STATUS_ALLOWED_EMAILS": "ana@x.example",
            "FIRESTORE_EMULATOR_HOST": "127.0.0.1:1",
            "INGEST_REPLAY_URL": "http://127.0.0.1:9/",
            "INGEST_REPLAY_CONCURRENCY": "16",
            "INGEST_REPLAY_RETRIES": "0",
            "INGEST_HOST": "0.0.0.0",
            "PORT": "9090",
        }
    )
    assert settings.status_audience == "https://status.example.com"
    assert settings.status_allowed_emails == ("ana@x.example",)
    assert settings.backend == "gcp"
    assert settings.project == "p1"
    assert settings.max_body_bytes == 1024
    assert settings.auth_allowed_emails == ("a@x.iam.gserviceaccount.com", "b@x")
    assert settings.firestore_emulator_host == "127.0.0.1:1"
    # The command line's defaults: replay's and serve's flags fall back to these.
    assert settings.replay_url == "http://127.0.0.1:9/"
    assert (settings.replay_concurrency, settings.replay_retries) == (16, 0)
    assert (settings.host, settings.port) == ("0.0.0.0", 9090)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("INGEST_BACKEND", "aws"),
        ("INGEST_MAX_BODY_BYTES", "-5"),
        ("INGEST_MAX_BODY_BYTES", "lots"),
        ("INGEST_FAULT_RATE", "1.5"),
        ("INGEST_LOG_FORMAT", "xml"),
        ("INGEST_AUTH_ALLOWED_EMAILS", " , "),  # would turn the allow-list off
        ("INGEST_AUTH_ALLOWED_EMAILS", "   "),
        ("INGEST_BODY_TIMEOUT_SECONDS", "0"),
        ("INGEST_REPLAY_CONCURRENCY", "0"),
        ("INGEST_REPLAY_RETRIES", "11"),
        ("PORT", "http"),
    ],
)
def test_bad_value_names_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        Settings.from_env({variable: value})


def test_gcp_backend_needs_a_project() -> None:
    with pytest.raises(ConfigError, match="INGEST_PROJECT"):
        Settings.from_env({"INGEST_BACKEND": "gcp"})


def test_settings_are_frozen() -> None:
    settings = Settings.from_env({})
    with pytest.raises(AttributeError):
        settings.backend = "gcp"  # type: ignore[misc]


def test_reference_lists_every_variable() -> None:
    names = {name for name, _, _ in reference()}
    assert "INGEST_PIPELINES" in names
    assert "INGEST_RECORD_DIR" in names
    # Unprefixed: the SDKs' emulator variables, and the port Cloud Run gives every container.
    plain = {n for n in names if not n.startswith("INGEST_")}
    assert all(n.endswith("_EMULATOR_HOST") for n in plain - {"PORT"})
