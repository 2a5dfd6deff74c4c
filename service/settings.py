"""Service settings: read once from the environment into a frozen, typed object.

Every variable has the prefix ``INGEST_`` but ``PORT`` (Cloud Run's). A bad value fails at
start-up with a message that names the variable. This is the only module that reads
``os.environ`` (the command line's flags default to settings, never to variables of their own);
the Google SDKs also read their own documented emulator variables (``FIRESTORE_EMULATOR_HOST``,
``STORAGE_EMULATOR_HOST``, ``PUBSUB_EMULATOR_HOST``), which are mirrored here so the service can
report and check them.

Longer than 300 lines: one typed field per setting with its variable and its meaning (the
README's settings table is checked against it), and their checks.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

from service.errors import ConfigError

Backend = Literal["embedded", "gcp"]
LogFormat = Literal["auto", "json", "text"]
T = TypeVar("T")

MIB = 1024 * 1024
# The bounds of replay's events in flight and rounds of re-sending (flag or variable alike).
REPLAY_CONCURRENCY = (1, 256)
REPLAY_RETRIES = (0, 10)


def _parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true/false")


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _fraction(raw: str) -> float:
    value = float(raw)
    if not 0.0 <= value <= 1.0:
        raise ValueError("must be between 0 and 1")
    return value


def _int_range(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw)
        if not low <= value <= high:
            raise ValueError(f"must be from {low} to {high}")
        return value

    return parse


# Any: the field's Literal type names the same choices (a parser cannot say so to mypy).
def _choice(*allowed: str) -> Callable[[str], Any]:
    def parse(raw: str) -> str:
        if raw not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return raw

    return parse


def _csv_list(raw: str) -> tuple[str, ...]:
    items = tuple(item.strip() for item in raw.split(",") if item.strip())
    if not items:
        # Set but naming nothing would turn the check off: most likely a mistake, never silent.
        raise ValueError("lists nothing; leave it unset to allow every caller")
    return items


def _setting(
    default: T, name: str, parse: Callable[[str], T], doc: str, *, plain: bool = False
) -> T:
    """One setting: its default, its variable (prefixed unless ``plain``), how its text is
    read, and what it means (kept in the field's metadata for from_env and the README)."""
    env = name if plain else f"INGEST_{name}"
    spec: T = field(default=default, metadata={"env": env, "parse": parse, "doc": doc})
    return spec


@dataclass(frozen=True)
class Settings:
    backend: Backend = _setting(
        "embedded", "BACKEND", _choice("embedded", "gcp"), "embedded (local) or gcp"
    )
    data_dir: Path = _setting(
        Path(".ingest-data"), "DATA_DIR", Path, "folder for the embedded backends' data"
    )
    pipelines_file: Path = _setting(
        Path("pipelines.toml"), "PIPELINES", Path, "the pipelines file (TOML)"
    )
    project: str | None = _setting(None, "PROJECT", str, "Google Cloud project (gcp backend)")
    firestore_database: str = _setting("(default)", "FIRESTORE_DATABASE", str, "Firestore database")
    ledger_collection: str = _setting(
        "ingest-ledger", "LEDGER_COLLECTION", str, "Firestore collection of ledger documents"
    )
    bigquery_location: str = _setting("US", "BIGQUERY_LOCATION", str, "location of load jobs")
    bigquery_endpoint: str | None = _setting(
        None, "BIGQUERY_ENDPOINT", str, "BigQuery API endpoint (emulators only)"
    )
    bigquery_write_endpoint: str | None = _setting(
        None,
        "BIGQUERY_WRITE_ENDPOINT",
        str,
        "Storage Write API gRPC host:port, plaintext (emulators only)",
    )
    ack_deadline_seconds: int = _setting(
        600, "ACK_DEADLINE_SECONDS", _positive_int, "push ack deadline; the lease length"
    )
    ledger_lease_seconds: int | None = _setting(
        None, "LEASE_SECONDS", _positive_int, "ledger lease length (default: the ack deadline)"
    )
    max_body_bytes: int = _setting(
        32 * MIB, "MAX_BODY_BYTES", _positive_int, "largest request body accepted"
    )
    body_timeout_seconds: int = _setting(
        60, "BODY_TIMEOUT_SECONDS", _positive_int, "a request body not in by then gets 408"
    )
    max_arriving_body_bytes: int = _setting(
        128 * MIB,
        "MAX_ARRIVING_BODY_BYTES",
        _positive_int,
        "bytes all bodies still arriving may hold; past it 503",
    )
    max_units_in_flight: int = _setting(
        4, "MAX_UNITS_IN_FLIGHT", _positive_int, "units run at once, globally"
    )
    stall_seconds: int = _setting(
        120,
        "STALL_SECONDS",
        _positive_int,
        "a unit with no progress this long is cancelled and retried",
    )
    max_buffered_bytes: int = _setting(
        64 * MIB, "MAX_BUFFERED_BYTES", _positive_int, "bytes buffered between stages"
    )
    spool_max_bytes: int = _setting(
        1024 * MIB,
        "SPOOL_MAX_BYTES",
        _positive_int,
        "bytes of temporary files all units may hold (memory on Cloud Run)",
    )
    read_seconds: int | None = _setting(
        None,
        "READ_SECONDS",
        _positive_int,
        "a unit still reading its file then fails (default: 4/5 of the ack deadline)",
    )
    chunk_bytes: int = _setting(
        1 * MIB, "CHUNK_BYTES", _positive_int, "read size when streaming objects"
    )
    record_dir: Path | None = _setting(
        None, "RECORD_DIR", Path, "write every accepted event here for replay"
    )
    record_max_body_bytes: int = _setting(
        1 * MIB,
        "RECORD_MAX_BODY_BYTES",
        _positive_int,
        "a recorded body over this is left out (size and SHA-256 kept)",
    )
    allow_force: bool = _setting(
        False, "ALLOW_FORCE", _parse_bool, "honour X-Ingest-Force: 1 (replay --force); keep off"
    )
    log_format: LogFormat = _setting(
        "auto", "LOG_FORMAT", _choice("auto", "json", "text"), "auto, json or text"
    )
    log_level: str = _setting(
        "INFO", "LOG_LEVEL", _choice("DEBUG", "INFO", "WARNING", "ERROR"), "level"
    )
    auth_audience: str | None = _setting(
        None, "AUTH_AUDIENCE", str, "require a Google OIDC token for this audience"
    )
    auth_allowed_emails: tuple[str, ...] = _setting(
        (), "AUTH_ALLOWED_EMAILS", _csv_list, "service accounts allowed to push"
    )
    status_audience: str | None = _setting(
        None, "STATUS_AUDIENCE", str, "token audience for /status (default: AUTH_AUDIENCE)"
    )
    status_allowed_emails: tuple[str, ...] = _setting(
        (),
        "STATUS_ALLOWED_EMAILS",
        _csv_list,
        "who may read /status (default: AUTH_ALLOWED_EMAILS)",
    )
    auth_certs_url: str = _setting(
        "https://www.googleapis.com/oauth2/v1/certs",
        "AUTH_CERTS_URL",
        str,
        "where Google's token certificates are read",
    )
    outcome_topic: str | None = _setting(
        None, "OUTCOME_TOPIC", str, "publish unit outcomes to this Pub/Sub topic"
    )
    work_topic: str | None = _setting(
        None,
        "WORK_TOPIC",
        str,
        "sweeps publish one message per unit here (gcp); embedded: in-process",
    )
    sweep_page_size: int = _setting(
        1000, "SWEEP_PAGE_SIZE", _positive_int, "objects a sweep lists per page"
    )
    metrics_export: str = _setting(
        "auto",
        "METRICS_EXPORT",
        _choice("auto", "cloud-monitoring", "none"),
        "auto: Cloud Monitoring on gcp (not on emulators); /metrics always",
    )
    trace_export: str = _setting(
        "auto",
        "TRACE_EXPORT",
        _choice("auto", "cloud-trace", "none"),
        "auto: Cloud Trace on gcp (not on emulators); else spans go nowhere",
    )
    fault_rate: float = _setting(
        0.0, "FAULT_RATE", _fraction, "testing only: share of calls failed"
    )
    # The command line's defaults (a flag given wins).
    replay_url: str | None = _setting(
        None, "REPLAY_URL", str, "replay and deadletter redrive: --to, where events are POSTed"
    )
    replay_concurrency: int = _setting(
        4,
        "REPLAY_CONCURRENCY",
        _int_range(*REPLAY_CONCURRENCY),
        "replay and redrive: --concurrency",
    )
    replay_retries: int = _setting(
        3, "REPLAY_RETRIES", _int_range(*REPLAY_RETRIES), "replay: --retries"
    )
    host: str = _setting("127.0.0.1", "HOST", str, "serve: --host, the address bound")
    port: int = _setting(
        8080, "PORT", _int_range(0, 65535), "serve: --port (Cloud Run sets PORT)", plain=True
    )
    firestore_emulator_host: str | None = _setting(
        None, "FIRESTORE_EMULATOR_HOST", str, "read by the SDK", plain=True
    )
    storage_emulator_host: str | None = _setting(
        None, "STORAGE_EMULATOR_HOST", str, "read by the SDK", plain=True
    )
    pubsub_emulator_host: str | None = _setting(
        None, "PUBSUB_EMULATOR_HOST", str, "read by the SDK", plain=True
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for spec in fields(cls):
            name = spec.metadata["env"]
            raw = env.get(name)
            if raw is None or raw == "":
                continue
            try:
                values[spec.name] = spec.metadata["parse"](raw)
            except ValueError as exc:
                raise ConfigError(f"{name}={raw!r} is invalid: {exc}") from exc
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.backend == "gcp" and not self.project:
            raise ConfigError("INGEST_PROJECT is required when INGEST_BACKEND=gcp")

    @property
    def lease_seconds(self) -> float:
        return float(self.ledger_lease_seconds or self.ack_deadline_seconds)

    @property
    def unit_read_seconds(self) -> float:
        # The rest of the ack deadline is the load's: the push must be answered within it.
        return float(self.read_seconds or self.ack_deadline_seconds * 4 / 5)

    @property
    def renew_every_seconds(self) -> float:
        # A third of the lease leaves two chances to renew before another worker may take over.
        return self.lease_seconds / 3


def reference() -> list[tuple[str, str, str]]:
    """(variable, default, meaning) for every setting: the README's configuration table."""
    rows = []
    for spec in fields(Settings):
        rows.append((spec.metadata["env"], repr(spec.default), cast(str, spec.metadata["doc"])))
    return rows


def replace_settings(settings: Settings, **changes: object) -> Settings:
    """A copy with some fields changed (tests and the CLI's flags use this)."""
    from dataclasses import replace

    return replace(settings, **cast(dict[str, Any], changes))
