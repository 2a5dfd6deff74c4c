"""The gcloud (and bq) commands a deployment implies, in the order they must run. Pure: no I/O.

Two values exist only once Google Cloud has made them: the Pub/Sub subscription Eventarc creates
behind each trigger (where the ack deadline, retry and dead-letter settings go) and the project's
service agents. Such a command has a ``capture`` name; the shell script keeps its output in that
variable and later arguments use it as ``${NAME}``.
"""

from __future__ import annotations

from service.deploy.commands import (
    Built,
    Command,
    bucket_binding,
    create_bucket,
    gcloud,
    image_uri,
    member,
    project_binding,
    pubsub_binding,
    run,
)
from service.deploy.delivery import delivery, eventarc_triggers, schedules, trigger_access
from service.deploy.deployment_file import Deployment
from service.deploy.fanout import fanout
from service.deploy.image import image

# The APIs a deployment uses, enabled first.
APIS = (
    "artifactregistry.googleapis.com",
    "bigquery.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudscheduler.googleapis.com",
    "eventarc.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "storage.googleapis.com",
)
# The ledger's composite indexes (equality fields, then the field sorted descending):
# `ingest ledger list --state` (and the retry of failed units), the status page's pipeline
# filter with and without a state (and its counts since a time), and a name's last completed
# generation (same-content check).
LEDGER_INDEXES = (
    (("state",), "updated_at"),
    (("pipeline",), "updated_at"),
    (("pipeline", "state"), "updated_at"),
    (("name_key", "state"), "generation"),
)
# Delimiters gcloud accepts in place of the comma between env vars (the ^X^ escape).
ENV_DELIMITERS = ",;|#~@"


def plan(d: Deployment) -> list[Command]:
    steps = (
        ("Enable the APIs", _apis),
        ("Service accounts", _service_accounts),
        ("Cloud Storage buckets", _buckets),
        ("BigQuery datasets", _datasets),
        ("Firestore ledger database, TTL policy and indexes", _firestore),
        ("Pub/Sub topics and the dead-letter hold subscription", _topics),
        ("What the service's identity may do", _service_access),
        ("Build the image", image),
        ("Deploy the Cloud Run service", _deploy),
        ("What Eventarc, Cloud Storage and Pub/Sub need", trigger_access),
        ("Eventarc triggers", eventarc_triggers),
        ("Delivery: ack deadline, retries, dead letters", delivery),
        ("Fan-out: the work topic and its push subscription", fanout),
        ("Cloud Scheduler jobs", schedules),
    )
    return [Command(title, argv, capture) for title, build in steps for argv, capture in build(d)]


def _apis(d: Deployment) -> Built:
    yield gcloud(d, "services enable", *APIS)


def _service_accounts(d: Deployment) -> Built:
    accounts = (
        (d.service.service_account, f"{d.service.name}: the Cloud Run service"),
        (d.trigger_service_account, f"{d.service.name}: Eventarc triggers"),
        (d.image.service_account, f"{d.service.name}: Cloud Build"),
    )
    for account_id, display in accounts:
        yield gcloud(d, "iam service-accounts create", account_id, f"--display-name={display}")


def _buckets(d: Deployment) -> Built:
    for bucket, location in d.buckets:
        yield create_bucket(d, bucket, location)


def _datasets(d: Deployment) -> Built:
    for dataset in d.datasets:
        yield run(
            "bq",
            "mk",
            "--dataset",
            f"--location={d.bigquery_location}",
            f"{d.project}:{dataset}",
        )


def _firestore(d: Deployment) -> Built:
    f = d.firestore
    yield gcloud(
        d,
        "firestore databases create",
        f"--database={f.database}",
        f"--location={f.location}",
        "--type=firestore-native",
    )
    # Finished ledger records carry expire_at; Firestore deletes them once it has passed.
    yield gcloud(
        d,
        "firestore fields ttls update",
        f.ttl_field,
        f"--collection-group={f.collection}",
        "--enable-ttl",
        f"--database={f.database}",
    )
    # Without these Firestore refuses the listing queries (FAILED_PRECONDITION); --async: an
    # index takes minutes to build and nothing later in the plan waits for it.
    for fields, newest_first in LEDGER_INDEXES:
        yield gcloud(
            d,
            "firestore indexes composite create",
            f"--collection-group={f.collection}",
            f"--database={f.database}",
            "--query-scope=collection",
            *(f"--field-config=field-path={name},order=ascending" for name in fields),
            f"--field-config=field-path={newest_first},order=descending",
            "--async",
        )


def _topics(d: Deployment) -> Built:
    topics = (d.scheduler_topic, d.delivery.dead_letter_topic, d.outcome_topic)
    for topic in filter(None, topics):
        yield gcloud(d, "pubsub topics create", topic)
    # Dead letters are kept here until someone replays or drops them (docs/deploy.md).
    yield gcloud(
        d,
        "pubsub subscriptions create",
        f"{d.delivery.dead_letter_topic}-hold",
        f"--topic={d.delivery.dead_letter_topic}",
        f"--message-retention-duration={d.delivery.dead_letter_retention_days}d",
        "--expiration-period=never",
    )


def _service_access(d: Deployment) -> Built:
    runner = member(d.service.service_account, d.project)
    for bucket in d.source_buckets:
        yield bucket_binding(d, bucket, runner, "roles/storage.objectViewer")
    quarantines = sorted({(p.quarantine_bucket, p.quarantine_prefix) for p in d.pipelines})
    for bucket, prefix in quarantines:
        # objectUser (not objectCreator): a retried unit rewrites its quarantine file.
        condition = None
        if prefix:
            resource = f"projects/_/buckets/{bucket}/objects/{prefix}"
            condition = f'expression=resource.name.startsWith("{resource}"),title=quarantine-only'
        yield bucket_binding(d, bucket, runner, "roles/storage.objectUser", condition)
    for dataset in d.datasets:
        yield run(
            "bq",
            "add-iam-policy-binding",
            f"--member={runner}",
            "--role=roles/bigquery.dataEditor",
            f"{d.project}:{dataset}",
        )
    for role in ("roles/bigquery.jobUser", "roles/datastore.user"):
        yield project_binding(d, runner, role)
    if d.outcome_topic:
        yield pubsub_binding(d, "topics", d.outcome_topic, runner, "roles/pubsub.publisher")


def service_env(d: Deployment) -> tuple[tuple[str, str], ...]:
    derived = (
        ("INGEST_BACKEND", "gcp"),
        ("INGEST_PROJECT", d.project),
        ("INGEST_ACK_DEADLINE_SECONDS", str(d.delivery.ack_deadline_seconds)),
        ("INGEST_BIGQUERY_LOCATION", d.bigquery_location),
        ("INGEST_FIRESTORE_DATABASE", d.firestore.database),
        ("INGEST_LEDGER_COLLECTION", d.firestore.collection),
        ("INGEST_PIPELINES", f"/app/config/{d.build.pipelines_name}"),
    )
    outcomes = (("INGEST_OUTCOME_TOPIC", d.outcome_topic),) if d.outcome_topic else ()
    return derived + outcomes + _spool_limit(d) + d.service.env


def _spool_limit(d: Deployment) -> tuple[tuple[str, str], ...]:
    """Temporary files are memory on Cloud Run: half the instance's, unless env says otherwise
    (the other half is the process, its buffers and the batches between stages)."""
    if any(name == "INGEST_SPOOL_MAX_BYTES" for name, _ in d.service.env):
        return ()
    amount, unit = int(d.service.memory[:-2]), d.service.memory[-2:]
    memory = amount * (1024**3 if unit == "Gi" else 1024**2)
    return (("INGEST_SPOOL_MAX_BYTES", str(memory // 2)),)


def env_flag(pairs: tuple[tuple[str, str], ...]) -> str:
    """``--set-env-vars``, switching gcloud's delimiter when a value holds a comma."""
    text = "".join(k + v for k, v in pairs)
    delimiter = next((c for c in ENV_DELIMITERS if c not in text), None)
    if delimiter is None:
        raise ValueError("every delimiter gcloud accepts occurs in the env values")
    joined = delimiter.join(f"{k}={v}" for k, v in pairs)
    return (
        f"--set-env-vars={joined}" if delimiter == "," else f"--set-env-vars=^{delimiter}^{joined}"
    )


def _deploy(d: Deployment) -> Built:
    s = d.service
    yield gcloud(
        d,
        "run deploy",
        s.name,
        f"--image={image_uri(d)}",
        f"--region={d.region}",
        f"--service-account={s.service_account}@{d.project}.iam.gserviceaccount.com",
        "--no-allow-unauthenticated",
        f"--ingress={s.ingress}",
        f"--concurrency={s.concurrency}",
        f"--cpu={s.cpu}",
        f"--memory={s.memory}",
        f"--timeout={s.timeout_seconds}",
        f"--min-instances={s.min_instances}",
        f"--max-instances={s.max_instances}",
        env_flag(service_env(d)),
    )
