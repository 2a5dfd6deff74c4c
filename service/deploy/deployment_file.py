"""``eventarc.yaml``: read and validate the declared deployment into frozen values.

The pipelines file it names supplies the source buckets (one storage trigger each), the quarantine
locations, the datasets and the pipeline names the schedules may use, so nothing is said twice.
Errors name the file and the field; a key the file does not know is refused with the closest
known one (``KEYS``), never ignored. Longer than 300 lines: the models, the keys derived
from them and their reader stay together, so a new key is added in one place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from service.deploy.build_context import BuildSource, build_source
from service.deploy.locations import firestore_location, shared_location
from service.events.storage import BUCKET_NAME
from service.pipeline.pipelines_file import load_pipelines
from service.settings import reference
from service.typed_reader import Section, closest, load_yaml

# Google Cloud's naming rules, as far as the plan relies on them.
PROJECT_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
REGION = re.compile(r"^[a-z]+-[a-z]+[0-9]+$")
ACCOUNT_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
RESOURCE_NAME = re.compile(r"^[a-z]([a-z0-9-]{0,47}[a-z0-9])?$")
TOPIC = re.compile(r"^[A-Za-z][A-Za-z0-9._~+%-]{2,254}$")
JOB_NAME = re.compile(r"^[A-Za-z0-9_-]{1,500}$")
IMAGE_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
MEMORY = re.compile(r"^[0-9]+(Mi|Gi)$")
LOCATION = re.compile(r"^[A-Za-z0-9-]+$")
# eventarc.yaml's example project id: planning for it would only fail later, command by command.
PLACEHOLDER_PROJECT = "my-ingest-project"
# Settings the plan sets itself from the sections of this file; env may not repeat them.
DERIVED_ENV = {
    "INGEST_BACKEND": "always gcp on Cloud Run",
    "INGEST_PROJECT": "project",
    "INGEST_ACK_DEADLINE_SECONDS": "delivery.ack_deadline_seconds",
    "INGEST_BIGQUERY_LOCATION": "bigquery.location",
    "INGEST_FIRESTORE_DATABASE": "firestore.database",
    "INGEST_LEDGER_COLLECTION": "firestore.collection",
    "INGEST_OUTCOME_TOPIC": "outcomes.topic",
    "INGEST_PIPELINES": "pipelines (the image holds them)",
    "INGEST_HOST": "the image (0.0.0.0: Cloud Run reaches the container from outside)",
}


@dataclass(frozen=True)
class Image:
    repository: str  # an Artifact Registry docker repository in the deployment's region
    name: str
    tag: str
    service_account: str  # account id; Cloud Build runs the build as this identity
    staging_bucket: str  # where gcloud uploads the build's source for Cloud Build to read


@dataclass(frozen=True)
class Service:
    name: str
    service_account: str  # account id; the service runs as this identity
    cpu: str
    memory: str
    concurrency: int
    min_instances: int
    max_instances: int
    timeout_seconds: int
    ingress: str
    env: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Firestore:
    database: str
    location: str
    collection: str
    ttl_field: str


@dataclass(frozen=True)
class Delivery:
    ack_deadline_seconds: int
    min_retry_delay_seconds: int
    max_retry_delay_seconds: int
    max_delivery_attempts: int
    dead_letter_topic: str
    dead_letter_retention_days: int


@dataclass(frozen=True)
class Schedule:
    name: str
    pipeline: str
    schedule: str
    time_zone: str
    prefix: str | None = None


@dataclass(frozen=True)
class PipelineFacts:
    """What the deployment needs to know of one pipeline."""

    name: str
    bucket: str
    dataset: str
    quarantine_bucket: str
    quarantine_prefix: str


@dataclass(frozen=True)
class Deployment:
    project: str
    region: str
    image: Image
    service: Service
    buckets: tuple[tuple[str, str], ...]  # (name, location) of every bucket the pipelines use
    bigquery_location: str
    firestore: Firestore
    trigger_service_account: str
    scheduler_topic: str
    delivery: Delivery
    schedules: tuple[Schedule, ...]
    pipelines: tuple[PipelineFacts, ...]
    build: BuildSource
    outcome_topic: str | None = None  # where the service publishes unit outcomes, if anywhere

    def bucket_location(self, bucket: str) -> str:
        return dict(self.buckets)[bucket]

    @property
    def source_buckets(self) -> tuple[str, ...]:
        return tuple(sorted({p.bucket for p in self.pipelines}))

    @property
    def datasets(self) -> tuple[str, ...]:
        return tuple(sorted({p.dataset for p in self.pipelines}))


def _fields(model: type) -> frozenset[str]:
    return frozenset(f.name for f in fields(model))


# The keys of each section ("": the top level; "schedules": each entry), as the models name them
# but for the two sections read into fields of the Deployment itself.
KEYS: dict[str, frozenset[str]] = {
    "": _fields(Deployment)
    - {"bigquery_location", "trigger_service_account", "scheduler_topic", "build", "outcome_topic"}
    | {"bigquery", "triggers", "outcomes"},
    "image": _fields(Image),
    "service": _fields(Service),
    "bigquery": frozenset({"location"}),
    "outcomes": frozenset({"topic"}),
    "firestore": _fields(Firestore),
    "triggers": frozenset({"service_account", "scheduler_topic"}),
    "delivery": _fields(Delivery),
    "schedules": _fields(Schedule),
}


def load_deployment(path: Path) -> Deployment:
    top = load_yaml(path, "deployment file", known=KEYS[""])
    pipelines_file = path.parent / top.get("pipelines", str, required=True)
    pipelines = pipeline_facts(pipelines_file)
    return _Reader(path, top, pipelines).deployment(build_source(pipelines_file))


def pipeline_facts(pipelines_file: Path) -> tuple[PipelineFacts, ...]:
    facts = []
    for p in load_pipelines(pipelines_file).pipelines:
        q_bucket, q_prefix = p.quarantine_location
        facts.append(PipelineFacts(p.name, p.bucket, p.table.dataset, q_bucket, q_prefix))
    return tuple(facts)


class _Reader:
    def __init__(self, path: Path, top: Section, pipelines: tuple[PipelineFacts, ...]) -> None:
        self.path = path
        self.top = top
        self.pipelines = pipelines

    def deployment(self, build: BuildSource) -> Deployment:
        top = self.top
        delivery = self.delivery()
        project = top.named("project", PROJECT_ID)
        if project == PLACEHOLDER_PROJECT:
            raise top.fail("project", f"{project!r} is the example's: put your project id here")
        buckets = self.buckets()
        derived = shared_location([location for _, location in buckets])
        bigquery_location = self.location(
            top.section("bigquery", known=KEYS["bigquery"]), derived, buckets
        )
        firestore_default = firestore_location(derived) if derived else None
        return Deployment(
            project=project,
            region=top.named("region", REGION),
            image=self.image(project),
            service=self.service(delivery),
            buckets=buckets,
            bigquery_location=bigquery_location,
            firestore=self.firestore(firestore_default, buckets),
            trigger_service_account=top.section("triggers", known=KEYS["triggers"]).named(
                "service_account", ACCOUNT_ID, "ingest-trigger"
            ),
            scheduler_topic=top.section("triggers", known=KEYS["triggers"]).named(
                "scheduler_topic", TOPIC, "ingest-schedule"
            ),
            delivery=delivery,
            schedules=self.schedules(),
            pipelines=self.pipelines,
            build=build,
            outcome_topic=self.outcome_topic(),
        )

    def outcome_topic(self) -> str | None:
        s = self.top.section("outcomes", known=KEYS["outcomes"])
        return s.named("topic", TOPIC) if s.get("topic", str) is not None else None

    def location(
        self, s: Section, derived: str | None, buckets: tuple[tuple[str, str], ...]
    ) -> str:
        """The section's ``location``; without one, the buckets' (when it is certain)."""
        if s.get("location", str) is None and derived is None:
            places = ", ".join(sorted({location for _, location in buckets}))
            raise s.fail("location", f"is required: the buckets ({places}) do not decide it")
        return s.named("location", LOCATION, derived)

    def image(self, project: str) -> Image:
        s = self.top.section("image", known=KEYS["image"])
        staging = s.get("staging_bucket", str, f"{project}-ingest-build")
        if not BUCKET_NAME.fullmatch(staging):
            raise s.fail("staging_bucket", f"{staging!r} is not a valid bucket name")
        return Image(
            repository=s.named("repository", RESOURCE_NAME, "ingest"),
            name=s.named("name", RESOURCE_NAME, "ingest"),
            tag=s.named("tag", IMAGE_TAG, "latest"),
            service_account=s.named("service_account", ACCOUNT_ID, "ingest-build"),
            staging_bucket=staging,
        )

    def service(self, delivery: Delivery) -> Service:
        s = self.top.section("service", known=KEYS["service"])
        timeout = s.number("timeout_seconds", delivery.ack_deadline_seconds, 1, 3600)
        if timeout < delivery.ack_deadline_seconds:
            # Cloud Run would cut a request the platform still waits for (and the lease covers).
            raise s.fail("timeout_seconds", "must be at least delivery.ack_deadline_seconds")
        min_instances = s.number("min_instances", 0, 0, 1000)
        max_instances = s.number("max_instances", 10, 1, 1000)
        if min_instances > max_instances:
            raise s.fail("min_instances", "must not exceed max_instances")
        ingress = s.get("ingress", str, "internal")
        if ingress not in {"all", "internal", "internal-and-cloud-load-balancing"}:
            raise s.fail("ingress", "must be all, internal or internal-and-cloud-load-balancing")
        memory = s.get("memory", str, "2Gi")
        if not MEMORY.match(memory):
            raise s.fail("memory", "must look like 512Mi or 2Gi")
        return Service(
            name=s.named("name", RESOURCE_NAME, "ingest"),
            service_account=s.named("service_account", ACCOUNT_ID, "ingest-runner"),
            cpu=s.get("cpu", str, "2"),
            memory=memory,
            concurrency=s.number("concurrency", 8, 1, 1000),
            min_instances=min_instances,
            max_instances=max_instances,
            timeout_seconds=timeout,
            ingress=ingress,
            env=self.env(s.section("env")),
        )

    def env(self, s: Section) -> tuple[tuple[str, str], ...]:
        known = {name for name, _, _ in reference()}
        pairs = []
        for key, value in s.raw.items():
            name = str(key)
            if name in DERIVED_ENV:
                raise s.fail(name, f"is set by the plan from {DERIVED_ENV[name]}")
            if name.startswith("INGEST_") and name not in known:
                close = closest(name, known)
                hint = f", did you mean `{close}`?" if close else " (see service/settings.py)"
                raise s.fail(name, f"is not a setting of the service{hint}")
            if value is None or isinstance(value, dict | list):
                raise s.fail(name, "must be a single value")
            pairs.append((name, str(value).lower() if isinstance(value, bool) else str(value)))
        return tuple(pairs)

    def buckets(self) -> tuple[tuple[str, str], ...]:
        s = self.top.section("buckets")
        declared = {}
        for name, location in s.raw.items():
            if not BUCKET_NAME.fullmatch(str(name)):
                raise s.fail(str(name), "is not a valid bucket name")
            if not isinstance(location, str) or not LOCATION.match(location):
                raise s.fail(str(name), "must be the bucket's location, e.g. EU or europe-west1")
            declared[str(name)] = location
        for p in self.pipelines:
            for bucket in (p.bucket, p.quarantine_bucket):
                if bucket not in declared:
                    raise s.fail(bucket, f"is used by pipeline {p.name!r}: give its location")
        return tuple(declared.items())

    def firestore(self, derived: str | None, buckets: tuple[tuple[str, str], ...]) -> Firestore:
        s = self.top.section("firestore", known=KEYS["firestore"])
        database = s.get("database", str, "(default)")
        if database != "(default)" and not RESOURCE_NAME.match(database):
            raise s.fail("database", f"{database!r} is not a valid database id")
        return Firestore(
            database=database,
            location=self.location(s, derived, buckets),
            collection=s.get("collection", str, "ingest-ledger"),
            ttl_field=s.get("ttl_field", str, "expire_at"),
        )

    def delivery(self) -> Delivery:
        s = self.top.section("delivery", known=KEYS["delivery"])
        low = s.number("min_retry_delay_seconds", 10, 0, 600)
        high = s.number("max_retry_delay_seconds", 600, 0, 600)
        if low > high:
            raise s.fail("min_retry_delay_seconds", "must not exceed max_retry_delay_seconds")
        return Delivery(
            ack_deadline_seconds=s.number("ack_deadline_seconds", 600, 10, 600),
            min_retry_delay_seconds=low,
            max_retry_delay_seconds=high,
            max_delivery_attempts=s.number("max_delivery_attempts", 10, 5, 100),
            dead_letter_topic=s.named("dead_letter_topic", TOPIC, "ingest-dead-letter"),
            dead_letter_retention_days=s.number("dead_letter_retention_days", 7, 1, 31),
        )

    def schedules(self) -> tuple[Schedule, ...]:
        raw = self.top.get("schedules", list) or []
        names = {p.name for p in self.pipelines}
        schedules = []
        for index, entry in enumerate(raw):
            where = f"schedules[{index}]."
            s = Section(self.path, where, entry, numbers_as_text=True, known=KEYS["schedules"])
            pipeline = s.get("pipeline", str, required=True)
            if pipeline not in names:
                raise s.fail("pipeline", f"{pipeline!r} is not in the pipelines file")
            cron = s.get("schedule", str, required=True)
            if len(cron.split()) != 5:
                raise s.fail("schedule", "must be a cron expression of five fields")
            zone = s.get("time_zone", str, "Etc/UTC")
            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise s.fail("time_zone", f"{zone!r} is not a time zone") from exc
            schedules.append(
                Schedule(s.named("name", JOB_NAME), pipeline, cron, zone, s.get("prefix", str))
            )
        if len({s.name for s in schedules}) != len(schedules):
            raise self.top.fail("schedules", "job names must be unique")
        return tuple(schedules)
