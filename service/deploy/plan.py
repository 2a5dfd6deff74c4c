"""The gcloud (and bq) commands a deployment implies, in the order they must run. Pure: no I/O.

Two values exist only once Google Cloud has made them: the Pub/Sub subscription Eventarc creates
behind each trigger (where the ack deadline, retry and dead-letter settings go) and the project's
service agents. Such a command has a ``capture`` name; the shell script keeps its output in that
variable and later arguments use it as ``${NAME}``.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass

from service.deploy.config import Deployment, Schedule

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
STORAGE_FINALIZED = "google.cloud.storage.object.v1.finalized"
PUBSUB_PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"
# Shell variables filled by capturing commands.
GCS_AGENT = "GCS_SERVICE_AGENT"
PROJECT_NUMBER = "PROJECT_NUMBER"
# Delimiters gcloud accepts in place of the comma between env vars (the ^X^ escape).
ENV_DELIMITERS = ",;|#~@"
SHELL_REFERENCE = re.compile(r"\$\{[A-Z][A-Z0-9_]*\}")


@dataclass(frozen=True)
class Command:
    step: str  # the heading the command is printed under
    argv: tuple[str, ...]
    capture: str | None = None  # shell variable that keeps the command's output


@dataclass(frozen=True)
class Trigger:
    name: str
    location: str
    filters: tuple[str, ...]
    topic: str | None = None  # an existing topic (Pub/Sub triggers)

    @property
    def subscription_var(self) -> str:
        return "SUB_" + re.sub(r"[^A-Z0-9]", "_", self.name.upper())


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
        ("What Eventarc and Cloud Storage need", _trigger_access),
        ("Eventarc triggers", _triggers),
        ("Delivery: ack deadline, retries, dead letters", _delivery),
        ("Cloud Scheduler jobs", _schedules),
    )
    return [Command(title, argv, capture) for title, build in steps for argv, capture in build(d)]


Built = Iterator[tuple[tuple[str, ...], str | None]]


def _run(*argv: str) -> tuple[tuple[str, ...], None]:
    return argv, None


def member(account_id: str, project: str) -> str:
    return f"serviceAccount:{account_id}@{project}.iam.gserviceaccount.com"


def image_uri(d: Deployment) -> str:
    i = d.image
    return f"{d.region}-docker.pkg.dev/{d.project}/{i.repository}/{i.name}:{i.tag}"


def topic_path(d: Deployment, topic: str) -> str:
    return f"projects/{d.project}/topics/{topic}"


def triggers(d: Deployment) -> list[Trigger]:
    """One storage-finalize trigger per source bucket, one Pub/Sub trigger for the scheduler."""
    found = [
        Trigger(
            _trigger_name(d.service.name, bucket),
            # A storage trigger lives where its bucket does (EU -> eu, europe-west1 ...).
            d.bucket_location(bucket).lower(),
            (f"type={STORAGE_FINALIZED}", f"bucket={bucket}"),
        )
        for bucket in d.source_buckets
    ]
    found.append(
        Trigger(
            f"{d.service.name}-schedule",
            d.region,
            (f"type={PUBSUB_PUBLISHED}",),
            topic_path(d, d.scheduler_topic),
        )
    )
    return found


def _trigger_name(service: str, bucket: str) -> str:
    name = re.sub(r"[^a-z0-9-]", "-", f"{service}-{bucket}".lower())
    return name[:63].rstrip("-")


def _apis(d: Deployment) -> Built:
    yield _run("gcloud", "services", "enable", *APIS, f"--project={d.project}")


def _service_accounts(d: Deployment) -> Built:
    accounts = (
        (d.service.service_account, f"{d.service.name}: the Cloud Run service"),
        (d.trigger_service_account, f"{d.service.name}: Eventarc triggers"),
    )
    for account_id, display in accounts:
        yield _run(
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
        yield _run(
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
        yield _run(
            "bq",
            "mk",
            "--dataset",
            f"--location={d.bigquery_location}",
            f"{d.project}:{dataset}",
        )


def _firestore(d: Deployment) -> Built:
    f = d.firestore
    yield _run(
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
    yield _run(
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
        yield _run("gcloud", "pubsub", "topics", "create", topic, f"--project={d.project}")
    # Dead letters are kept here until someone replays or drops them (docs/deploy.md).
    yield _run(
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
        yield _bucket_binding(d, bucket, runner, "roles/storage.objectViewer")
    quarantines = sorted({(p.quarantine_bucket, p.quarantine_prefix) for p in d.pipelines})
    for bucket, prefix in quarantines:
        # objectUser (not objectCreator): a retried unit rewrites its quarantine file.
        condition = None
        if prefix:
            resource = f"projects/_/buckets/{bucket}/objects/{prefix}"
            condition = f'expression=resource.name.startsWith("{resource}"),title=quarantine-only'
        yield _bucket_binding(d, bucket, runner, "roles/storage.objectUser", condition)
    for dataset in d.datasets:
        yield _run(
            "bq",
            "add-iam-policy-binding",
            f"--member={runner}",
            "--role=roles/bigquery.dataEditor",
            f"{d.project}:{dataset}",
        )
    for role in ("roles/bigquery.jobUser", "roles/datastore.user"):
        yield _project_binding(d, runner, role)


def _bucket_binding(
    d: Deployment, bucket: str, who: str, role: str, condition: str | None = None
) -> tuple[tuple[str, ...], None]:
    argv = ["gcloud", "storage", "buckets", "add-iam-policy-binding", f"gs://{bucket}"]
    argv += [f"--member={who}", f"--role={role}"]
    if condition:
        argv.append(f"--condition={condition}")
    return _run(*argv, f"--project={d.project}")


def _project_binding(d: Deployment, who: str, role: str) -> tuple[tuple[str, ...], None]:
    # --condition=None: add the binding without a condition and without an interactive prompt.
    return _run(
        "gcloud",
        "projects",
        "add-iam-policy-binding",
        d.project,
        f"--member={who}",
        f"--role={role}",
        "--condition=None",
    )


def _image(d: Deployment) -> Built:
    yield _run(
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
    yield _run("gcloud", "builds", "submit", f"--tag={image_uri(d)}", f"--project={d.project}", ".")


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
    yield _run(
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


def _trigger_access(d: Deployment) -> Built:
    trigger_sa = member(d.trigger_service_account, d.project)
    yield _run(
        "gcloud",
        "run",
        "services",
        "add-iam-policy-binding",
        d.service.name,
        f"--region={d.region}",
        f"--member={trigger_sa}",
        "--role=roles/run.invoker",
        f"--project={d.project}",
    )
    yield _project_binding(d, trigger_sa, "roles/eventarc.eventReceiver")
    # Cloud Storage publishes the finalize events to Eventarc's Pub/Sub transport.
    yield ("gcloud", "storage", "service-agent", f"--project={d.project}"), GCS_AGENT
    yield _project_binding(d, f"serviceAccount:${{{GCS_AGENT}}}", "roles/pubsub.publisher")


def _triggers(d: Deployment) -> Built:
    for t in triggers(d):
        argv = ["gcloud", "eventarc", "triggers", "create", t.name, f"--location={t.location}"]
        argv += [
            f"--destination-run-service={d.service.name}",
            f"--destination-run-region={d.region}",
            "--destination-run-path=/",
        ]
        argv += [f"--event-filters={f}" for f in t.filters]
        if t.topic:
            argv.append(f"--transport-topic={t.topic}")
        argv.append(
            f"--service-account={d.trigger_service_account}@{d.project}.iam.gserviceaccount.com"
        )
        yield _run(*argv, f"--project={d.project}")


def _delivery(d: Deployment) -> Built:
    dl = d.delivery
    yield (
        (
            "gcloud",
            "projects",
            "describe",
            d.project,
            "--format=value(projectNumber)",
        ),
        PROJECT_NUMBER,
    )
    # Pub/Sub's own service agent moves undeliverable messages to the dead-letter topic.
    pubsub_agent = (
        f"serviceAccount:service-${{{PROJECT_NUMBER}}}@gcp-sa-pubsub.iam.gserviceaccount.com"
    )
    yield _run(
        "gcloud",
        "pubsub",
        "topics",
        "add-iam-policy-binding",
        dl.dead_letter_topic,
        f"--member={pubsub_agent}",
        "--role=roles/pubsub.publisher",
        f"--project={d.project}",
    )
    for t in triggers(d):
        sub = f"${{{t.subscription_var}}}"
        yield (
            (
                "gcloud",
                "eventarc",
                "triggers",
                "describe",
                t.name,
                f"--location={t.location}",
                "--format=value(transport.pubsub.subscription)",
                f"--project={d.project}",
            ),
            t.subscription_var,
        )
        yield _run(
            "gcloud",
            "pubsub",
            "subscriptions",
            "update",
            sub,
            f"--ack-deadline={dl.ack_deadline_seconds}",
            f"--min-retry-delay={dl.min_retry_delay_seconds}s",
            f"--max-retry-delay={dl.max_retry_delay_seconds}s",
            f"--dead-letter-topic={topic_path(d, dl.dead_letter_topic)}",
            f"--max-delivery-attempts={dl.max_delivery_attempts}",
            f"--project={d.project}",
        )
        yield _run(
            "gcloud",
            "pubsub",
            "subscriptions",
            "add-iam-policy-binding",
            sub,
            f"--member={pubsub_agent}",
            "--role=roles/pubsub.subscriber",
            f"--project={d.project}",
        )


def sweep_message(schedule: Schedule) -> str:
    """What a job publishes: the pipeline to sweep (and a prefix), as the service decodes it."""
    body = {"pipeline": schedule.pipeline}
    if schedule.prefix:
        body["prefix"] = schedule.prefix
    return json.dumps(body, separators=(",", ":"))


def _schedules(d: Deployment) -> Built:
    for s in d.schedules:
        yield _run(
            "gcloud",
            "scheduler",
            "jobs",
            "create",
            "pubsub",
            s.name,
            f"--location={d.region}",
            f"--schedule={s.schedule}",
            f"--time-zone={s.time_zone}",
            f"--topic={topic_path(d, d.scheduler_topic)}",
            f"--message-body={sweep_message(s)}",
            f"--project={d.project}",
        )


def shell_word(arg: str) -> str:
    """Quote for bash; an argument with ``${NAME}`` in it is double-quoted so it expands."""
    if not SHELL_REFERENCE.search(arg):
        return shlex.quote(arg)
    rest = SHELL_REFERENCE.sub("", arg)
    if any(c in rest for c in '"\\`$'):
        raise ValueError(f"cannot quote {arg!r} for the shell")
    return f'"{arg}"'


def render(commands: list[Command]) -> str:
    """A bash script: each step under a numbered heading, one flag per line."""
    lines = [
        "#!/usr/bin/env bash",
        "# Generated by `ingest deploy plan`: review before running.",
        "set -euo pipefail",
    ]
    step = None
    number = 0
    for command in commands:
        if command.step != step:
            step = command.step
            number += 1
            lines += ["", f"# {number}. {step}"]
        lines.append(_render_command(command))
    return "\n".join(lines) + "\n"


def _render_command(command: Command) -> str:
    """A new line before every flag; a positional word stays on the line before it."""
    parts: list[str] = []
    for arg in command.argv:
        word = shell_word(arg)
        if parts and not arg.startswith("--"):
            parts[-1] += f" {word}"
        else:
            parts.append(word)
    text = " \\\n    ".join(parts)
    if command.capture:
        return f'{command.capture}="$({text})"'
    return text
