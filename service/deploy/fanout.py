"""The work topic a sweep fans out to, and the push subscription that brings each unit back.

One step of the deployment plan (after the delivery settings, whose captured project number
names Pub/Sub's agent): the topic, the runner's right to publish to it, the service's URL, a push
subscription to it with the same ack deadline, retry and dead-letter policy as the event
triggers, signed by the trigger's identity (already a run.invoker), and INGEST_WORK_TOPIC on the
service. The runner may also write its metrics to Cloud Monitoring and its spans to Cloud Trace.
"""

from __future__ import annotations

from service.deploy.commands import (
    Built,
    gcloud,
    member,
    project_binding,
    pubsub_binding,
    topic_path,
)
from service.deploy.delivery import PUBSUB_AGENT, delivery_policy
from service.deploy.deployment_file import Deployment

# Shell variable filled with the Cloud Run service's URL (the push endpoint and audience).
SERVICE_URL = "SERVICE_URL"


def work_topic(d: Deployment) -> str:
    return f"{d.service.name}-work"


def fanout(d: Deployment) -> Built:
    topic = work_topic(d)
    yield gcloud(d, "pubsub topics create", topic)
    # pubsub.topics.publish on this topic only: the runner publishes its sweeps' units.
    runner = member(d.service.service_account, d.project)
    yield pubsub_binding(d, "topics", topic, runner, "roles/pubsub.publisher")
    yield gcloud(
        d,
        "run services describe",
        d.service.name,
        f"--region={d.region}",
        "--format=value(status.url)",
        capture=SERVICE_URL,
    )
    subscription = f"{topic}-push"
    invoker = f"{d.trigger_service_account}@{d.project}.iam.gserviceaccount.com"
    yield gcloud(
        d,
        "pubsub subscriptions create",
        subscription,
        f"--topic={topic}",
        f"--push-endpoint=${{{SERVICE_URL}}}/",
        f"--push-auth-service-account={invoker}",
        f"--push-auth-token-audience=${{{SERVICE_URL}}}",
        *delivery_policy(d),
    )
    # The dead-letter policy needs Pub/Sub's agent to pull from the subscription it forwards.
    yield pubsub_binding(d, "subscriptions", subscription, PUBSUB_AGENT, "roles/pubsub.subscriber")
    # The service's metrics go to Cloud Monitoring (monitoring.timeSeries.create).
    yield project_binding(d, runner, "roles/monitoring.metricWriter")
    # Its units' spans go to Cloud Trace (cloudtrace.traces.patch).
    yield project_binding(d, runner, "roles/cloudtrace.agent")
    yield gcloud(
        d,
        "run services update",
        d.service.name,
        f"--region={d.region}",
        f"--update-env-vars=INGEST_WORK_TOPIC={topic_path(d, topic)}",
    )
