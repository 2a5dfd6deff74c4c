"""Service settings: read once from the environment into a frozen, typed object.

Every variable has the prefix ``INGEST_``. A bad value fails at start-up with a message that
names the variable. This is the only module that reads ``os.environ``; the Google SDKs also read
their own documented emulator variables (``FIRESTORE_EMULATOR_HOST``, ``STORAGE_EMULATOR_HOST``,
``PUBSUB_EMULATOR_HOST``), which are mirrored here so the service can report and check them.

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


def _choice(*allowed: str) -> Callable[[str], str]:
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


def _env(name: str, parse: Callable[[str], Any], *, doc: str, plain: bool = False) -> Any:
    """Field metadata: the variable's name (prefixed unless ``plain``), parser and meaning."""
    return {"env": name if plain else f"INGEST_{name}", "parse": parse, "doc": doc}


@dataclass(frozen=True)
class Settings:
    backend: Backend = field(
        default="embedded",
        metadata=_env("BACKEND", _choice("embedded", "gcp"), doc="embedded (local) or gcp"),
    )
    data_dir: Path = field(
        default=Path(".ingest-data"),
        metadata=_env("DATA_DIR", Path, doc="folder for the embedded backends' data"),
    )
    pipelines_file: Path = field(
        default=Path("pipelines.toml"),
        metadata=_env("PIPELINES", Path, doc="the pipelines file (TOML)"),
    )
    project: str | None = field(
        default=None, metadata=_env("PROJECT", str, doc="Google Cloud project (gcp backend)")
    )
    firestore_database: str = field(
        default="(default)", metadata=_env("FIRESTORE_DATABASE", str, doc="Firestore database")
    )
    ledger_collection: str = field(
        default="ingest-ledger",
        metadata=_env("LEDGER_COLLECTION", str, doc="Firestore collection of ledger documents"),
    )
    bigquery_location: str = field(
        default="US", metadata=_env("BIGQUERY_LOCATION", str, doc="location of load jobs")
    )
    bigquery_endpoint: str | None = field(
        default=None,
        metadata=_env("BIGQUERY_ENDPOINT", str, doc="BigQuery API endpoint (emulators only)"),
    )
    bigquery_write_endpoint: str | None = field(
        default=None,
        metadata=_env(
            "BIGQUERY_WRITE_ENDPOINT",
            str,
            doc="Storage Write API gRPC host:port, plaintext (emulators only)",
        ),
    )
    ack_deadline_seconds: int = field(
        default=600,
        metadata=_env(
            "ACK_DEADLINE_SECONDS", _positive_int, doc="push ack deadline; the lease length"
        ),
    )
    ledger_lease_seconds: int | None = field(
        default=None,
        metadata=_env(
            "LEASE_SECONDS", _positive_int, doc="ledger lease length (default: the ack deadline)"
        ),
    )
    max_body_bytes: int = field(
        default=32 * MIB,
        metadata=_env("MAX_BODY_BYTES", _positive_int, doc="largest request body accepted"),
    )
    body_timeout_seconds: int = field(
        default=60,
        metadata=_env(
            "BODY_TIMEOUT_SECONDS", _positive_int, doc="a request body not in by then gets 408"
        ),
    )
    max_arriving_body_bytes: int = field(
        default=128 * MIB,
        metadata=_env(
            "MAX_ARRIVING_BODY_BYTES",
            _positive_int,
            doc="bytes all bodies still arriving may hold; past it 503",
        ),
    )
    max_units_in_flight: int = field(
        default=4,
        metadata=_env("MAX_UNITS_IN_FLIGHT", _positive_int, doc="units run at once, globally"),
    )
    stall_seconds: int = field(
        default=120,
        metadata=_env(
            "STALL_SECONDS",
            _positive_int,
            doc="a unit with no progress this long is cancelled and retried",
        ),
    )
    max_buffered_bytes: int = field(
        default=64 * MIB,
        metadata=_env("MAX_BUFFERED_BYTES", _positive_int, doc="bytes buffered between stages"),
    )
    spool_max_bytes: int = field(
        default=1024 * MIB,
        metadata=_env(
            "SPOOL_MAX_BYTES",
            _positive_int,
            doc="bytes of temporary files all units may hold (memory on Cloud Run)",
        ),
    )
    read_seconds: int | None = field(
        default=None,
        metadata=_env(
            "READ_SECONDS",
            _positive_int,
            doc="a unit still reading its file then fails (default: 4/5 of the ack deadline)",
        ),
    )
    chunk_bytes: int = field(
        default=1 * MIB,
        metadata=_env("CHUNK_BYTES", _positive_int, doc="read size when streaming objects"),
    )
    record_dir: Path | None = field(
        default=None,
        metadata=_env("RECORD_DIR", Path, doc="write every accepted event here for replay"),
    )
    record_max_body_bytes: int = field(
        default=1 * MIB,
        metadata=_env(
            "RECORD_MAX_BODY_BYTES",
            _positive_int,
            doc="a recorded body over this is left out (size and SHA-256 kept)",
        ),
    )
    allow_force: bool = field(
        default=False,
        metadata=_env(
            "ALLOW_FORCE", _parse_bool, doc="honour X-Ingest-Force: 1 (replay --force); keep off"
        ),
    )
    log_format: LogFormat = field(
        default="auto",
        metadata=_env("LOG_FORMAT", _choice("auto", "json", "text"), doc="auto, json or text"),
    )
    log_level: str = field(
        default="INFO",
        metadata=_env("LOG_LEVEL", _choice("DEBUG", "INFO", "WARNING", "ERROR"), doc="level"),
    )
    auth_audience: str | None = field(
        default=None,
        metadata=_env("AUTH_AUDIENCE", str, doc="require a Google OIDC token for this audience"),
    )
    auth_allowed_emails: tuple[str, ...] = field(
        default=(),
        metadata=_env("AUTH_ALLOWED_EMAILS", _csv_list, doc="service accounts allowed to push"),
    )
    status_audience: str | None = field(
        default=None,
        metadata=_env(
            "STATUS_AUDIENCE", str, doc="token audience for /status (default: AUTH_AUDIENCE)"
        ),
    )
    status_allowed_emails: tuple[str, ...] = field(
        default=(),
        metadata=_env(
            "STATUS_ALLOWED_EMAILS",
            _csv_list,
            doc="who may read /status (default: AUTH_ALLOWED_EMAILS)",
        ),
    )
    auth_certs_url: str = field(
        default="https://www.googleapis.com/oauth2/v1/certs",
        metadata=_env("AUTH_CERTS_URL", str, doc="where Google's token certificates are read"),
    )
    outcome_topic: str | None = field(
        default=None,
        metadata=_env("OUTCOME_TOPIC", str, doc="publish unit outcomes to this Pub/Sub topic"),
    )
    work_topic: str | None = field(
        default=None,
        metadata=_env(
            "WORK_TOPIC",
            str,
            doc="sweeps publish one message per unit here (gcp); embedded: in-process",
        ),
    )
    sweep_page_size: int = field(
        default=1000,
        metadata=_env("SWEEP_PAGE_SIZE", _positive_int, doc="objects a sweep lists per page"),
    )
    metrics_export: str = field(
        default="auto",
        metadata=_env(
            "METRICS_EXPORT",
            _choice("auto", "cloud-monitoring", "none"),
            doc="auto: Cloud Monitoring on gcp (not on emulators); /metrics always",
        ),
    )
    trace_export: str = field(
        default="auto",
        metadata=_env(
            "TRACE_EXPORT",
            _choice("auto", "cloud-trace", "none"),
            doc="auto: Cloud Trace on gcp (not on emulators); else spans go nowhere",
        ),
    )
    fault_rate: float = field(
        default=0.0,
        metadata=_env("FAULT_RATE", _fraction, doc="testing only: share of calls failed"),
    )
    firestore_emulator_host: str | None = field(
        default=None,
        metadata=_env("FIRESTORE_EMULATOR_HOST", str, doc="read by the SDK", plain=True),
    )
    storage_emulator_host: str | None = field(
        default=None,
        metadata=_env("STORAGE_EMULATOR_HOST", str, doc="read by the SDK", plain=True),
    )
    pubsub_emulator_host: str | None = field(
        default=None,
        metadata=_env("PUBSUB_EMULATOR_HOST", str, doc="read by the SDK", plain=True),
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
