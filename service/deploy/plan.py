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
    image_uri,
    member,
    project_binding,
    run,
)
from service.deploy.delivery import delivery, eventarc_triggers, schedules, trigger_access
from service.deploy.deployment_file import Deployment
from service.deploy.fanout import fanout

# The APIs a deployment uses, enabled first.
APIS = (
    "artifactregistry.googleapis.com",
    "bigquery.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudscheduler.googleapis.com",
    "eventarc.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "storage.googleapis.com",
)
# Delimiters gcloud accepts in place of the comma between env vars (the ^X^ escape).
ENV_DELIMITERS = ",;|#~@"


def plan(d: Deployment) -> list[Command]:
    steps = (
        ("Enable the APIs", _apis),
        ("Service accounts", _service_accounts),
        ("Cloud Storage buckets", _buckets),
        ("BigQuery datasets", _datasets),
        ("Firestore ledger database and TTL policy", _firestore),
        ("Pub/Sub topics and the dead-letter hold subscription", _topics),
        ("What the service's identity may do", _service_access),
        ("Build the image", _image),
        ("Deploy the Cloud Run service", _deploy),
        ("What Eventarc and Cloud Storage need", trigger_access),
        ("Eventarc triggers", eventarc_triggers),
        ("Delivery: ack deadline, retries, dead letters", delivery),
        ("Fan-out: the work topic and its push subscription", fanout),
        ("Cloud Scheduler jobs", schedules),
    )
    return [Command(title, argv, capture) for title, build in steps for argv, capture in build(d)]


def _apis(d: Deployment) -> Built:
    yield run("gcloud", "services", "enable", *APIS, f"--project={d.project}")


def _service_accounts(d: Deployment) -> Built:
    accounts = (
        (d.service.service_account, f"{d.service.name}: the Cloud Run service"),
        (d.trigger_service_account, f"{d.service.name}: Eventarc triggers"),
    )
    for account_id, display in accounts:
        yield run(
            "gcloud",
            "iam",
            "service-accounts",
            "create",
            account_id,
            f"--display-name={display}",
            f"--project={d.project}",
        )


def _buckets(d: Deployment) -> Built:
    for bucket, location in d.buckets:
        yield run(
            "gcloud",
            "storage",
            "buckets",
            "create",
            f"gs://{bucket}",
            f"--location={location}",
            "--uniform-bucket-level-access",
            f"--project={d.project}",
        )


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
    yield run(
        "gcloud",
        "firestore",
        "databases",
        "create",
        f"--database={f.database}",
        f"--location={f.location}",
        "--type=firestore-native",
        f"--project={d.project}",
    )
    # Finished ledger records carry expire_at; Firestore deletes them once it has passed.
    yield run(
        "gcloud",
        "firestore",
        "fields",
        "ttls",
        "update",
        f.ttl_field,
        f"--collection-group={f.collection}",
        "--enable-ttl",
        f"--database={f.database}",
        f"--project={d.project}",
    )


def _topics(d: Deployment) -> Built:
    for topic in (d.scheduler_topic, d.delivery.dead_letter_topic):
        yield run("gcloud", "pubsub", "topics", "create", topic, f"--project={d.project}")
    # Dead letters are kept here until someone replays or drops them (docs/deploy.md).
    yield run(
        "gcloud",
        "pubsub",
        "subscriptions",
        "create",
        f"{d.delivery.dead_letter_topic}-hold",
        f"--topic={d.delivery.dead_letter_topic}",
        f"--message-retention-duration={d.delivery.dead_letter_retention_days}d",
        "--expiration-period=never",
        f"--project={d.project}",
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


def _image(d: Deployment) -> Built:
    yield run(
        "gcloud",
        "artifacts",
        "repositories",
        "create",
        d.image.repository,
        "--repository-format=docker",
        f"--location={d.region}",
        f"--project={d.project}",
    )
    # Run from the repository root: the build context is "." (see .dockerignore).
    yield run("gcloud", "builds", "submit", f"--tag={image_uri(d)}", f"--project={d.project}", ".")


def service_env(d: Deployment) -> tuple[tuple[str, str], ...]:
    derived = (
        ("INGEST_BACKEND", "gcp"),
        ("INGEST_PROJECT", d.project),
        ("INGEST_ACK_DEADLINE_SECONDS", str(d.delivery.ack_deadline_seconds)),
        ("INGEST_BIGQUERY_LOCATION", d.bigquery_location),
        ("INGEST_FIRESTORE_DATABASE", d.firestore.database),
        ("INGEST_LEDGER_COLLECTION", d.firestore.collection),
    )
    return derived + d.service.env


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
    yield run(
        "gcloud",
        "run",
        "deploy",
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
        f"--project={d.project}",
    )
