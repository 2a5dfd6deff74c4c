"""How events reach the service: Eventarc triggers, their delivery settings, Scheduler jobs."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from service.deploy.commands import (
    Built,
    gcloud,
    member,
    project_binding,
    pubsub_binding,
    topic_path,
)
from service.deploy.deployment_file import Deployment, Schedule
from service.events.event_types import PUBSUB_PUBLISHED, STORAGE_FINALIZED

# Shell variables filled by capturing commands.
GCS_AGENT = "GCS_SERVICE_AGENT"
PROJECT_NUMBER = "PROJECT_NUMBER"
# Pub/Sub's own service agent: it pushes to the service and moves undeliverable messages.
PUBSUB_AGENT = f"serviceAccount:service-${{{PROJECT_NUMBER}}}@gcp-sa-pubsub.iam.gserviceaccount.com"


@dataclass(frozen=True)
class Trigger:
    name: str
    location: str
    filters: tuple[str, ...]
    topic: str | None = None  # an existing topic (Pub/Sub triggers)

    @property
    def subscription_var(self) -> str:
        return "SUB_" + re.sub(r"[^A-Z0-9]", "_", self.name.upper())


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


def trigger_access(d: Deployment) -> Built:
    trigger_sa = member(d.trigger_service_account, d.project)
    yield gcloud(
        d,
        "run services add-iam-policy-binding",
        d.service.name,
        f"--region={d.region}",
        f"--member={trigger_sa}",
        "--role=roles/run.invoker",
    )
    yield project_binding(d, trigger_sa, "roles/eventarc.eventReceiver")
    # Cloud Storage publishes the finalize events to Eventarc's Pub/Sub transport.
    yield gcloud(d, "storage service-agent", capture=GCS_AGENT)
    yield project_binding(d, f"serviceAccount:${{{GCS_AGENT}}}", "roles/pubsub.publisher")
    yield (
        ("gcloud", "projects", "describe", d.project, "--format=value(projectNumber)"),
        PROJECT_NUMBER,
    )
    # Pub/Sub mints the push's OIDC token as the trigger's account; projects whose Pub/Sub agent
    # dates from before 8 April 2021 lack this role (Eventarc's roles-and-permissions page).
    yield project_binding(d, PUBSUB_AGENT, "roles/iam.serviceAccountTokenCreator")


def eventarc_triggers(d: Deployment) -> Built:
    for t in triggers(d):
        argv = [t.name, f"--location={t.location}"]
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
        yield gcloud(d, "eventarc triggers create", *argv)


def delivery_policy(d: Deployment) -> tuple[str, ...]:
    """How Pub/Sub pushes to the service, for the triggers' subscriptions and the work topic's
    alike: the ack deadline, the retry back-off, and the dead letters."""
    dl = d.delivery
    return (
        f"--ack-deadline={dl.ack_deadline_seconds}",
        f"--min-retry-delay={dl.min_retry_delay_seconds}s",
        f"--max-retry-delay={dl.max_retry_delay_seconds}s",
        f"--dead-letter-topic={topic_path(d, dl.dead_letter_topic)}",
        f"--max-delivery-attempts={dl.max_delivery_attempts}",
    )


def delivery(d: Deployment) -> Built:
    dl = d.delivery
    # Pub/Sub's agent moves undeliverable messages to the dead-letter topic.
    yield pubsub_binding(d, "topics", dl.dead_letter_topic, PUBSUB_AGENT, "roles/pubsub.publisher")
    for t in triggers(d):
        sub = f"${{{t.subscription_var}}}"
        yield gcloud(
            d,
            "eventarc triggers describe",
            t.name,
            f"--location={t.location}",
            "--format=value(transport.pubsub.subscription)",
            capture=t.subscription_var,
        )
        yield gcloud(d, "pubsub subscriptions update", sub, *delivery_policy(d))
        yield pubsub_binding(d, "subscriptions", sub, PUBSUB_AGENT, "roles/pubsub.subscriber")


def sweep_message(schedule: Schedule) -> str:
    """What a job publishes: the pipeline to sweep (and a prefix), as the service decodes it."""
    body = {"pipeline": schedule.pipeline}
    if schedule.prefix:
        body["prefix"] = schedule.prefix
    return json.dumps(body, separators=(",", ":"))


def schedules(d: Deployment) -> Built:
    for s in d.schedules:
        yield gcloud(
            d,
            "scheduler jobs create pubsub",
            s.name,
            f"--location={d.region}",
            f"--schedule={s.schedule}",
            f"--time-zone={s.time_zone}",
            f"--topic={topic_path(d, d.scheduler_topic)}",
            f"--message-body={sweep_message(s)}",
        )
