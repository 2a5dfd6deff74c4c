"""The work topic a sweep fans out to, and the push subscription that brings each unit back.

One step of the deployment plan (after the delivery settings, whose captured project number it
reuses): the topic, the runner's right to publish to it, the service's URL, a push subscription
to it with the same ack deadline, retry and dead-letter policy as the event triggers, signed by
the trigger's identity (already a run.invoker), and INGEST_WORK_TOPIC on the service. The
runner may also write its metrics to Cloud Monitoring and its spans to Cloud Trace.
"""

from __future__ import annotations

from service.deploy.commands import Built, member, project_binding, run, topic_path
from service.deploy.delivery import PROJECT_NUMBER
from service.deploy.deployment_file import Deployment

# Shell variable filled with the Cloud Run service's URL (the push endpoint and audience).
SERVICE_URL = "SERVICE_URL"


def work_topic(d: Deployment) -> str:
    return f"{d.service.name}-work"


def fanout(d: Deployment) -> Built:
    topic, dl, project = work_topic(d), d.delivery, f"--project={d.project}"
    pubsub_agent = (
        f"serviceAccount:service-${{{PROJECT_NUMBER}}}@gcp-sa-pubsub.iam.gserviceaccount.com"
    )
    yield run("gcloud", "pubsub", "topics", "create", topic, project)
    # pubsub.topics.publish on this topic only: the runner publishes its sweeps' units.
    runner = member(d.service.service_account, d.project)
    yield run(
        "gcloud", "pubsub", "topics", "add-iam-policy-binding", topic,
        f"--member={runner}", "--role=roles/pubsub.publisher", project,
    )  # fmt: skip
    describe = ("gcloud", "run", "services", "describe", d.service.name)
    yield (*describe, f"--region={d.region}", "--format=value(status.url)", project), SERVICE_URL
    subscription = f"{topic}-push"
    invoker = f"{d.trigger_service_account}@{d.project}.iam.gserviceaccount.com"
    yield run(
        "gcloud", "pubsub", "subscriptions", "create", subscription, f"--topic={topic}",
        f"--push-endpoint=${{{SERVICE_URL}}}/", f"--push-auth-service-account={invoker}",
        f"--push-auth-token-audience=${{{SERVICE_URL}}}",
        f"--ack-deadline={dl.ack_deadline_seconds}",
        f"--min-retry-delay={dl.min_retry_delay_seconds}s",
        f"--max-retry-delay={dl.max_retry_delay_seconds}s",
        f"--dead-letter-topic={topic_path(d, dl.dead_letter_topic)}",
        f"--max-delivery-attempts={dl.max_delivery_attempts}", project,
    )  # fmt: skip
    # The dead-letter policy needs Pub/Sub's agent to pull from the subscription it forwards.
    yield run(
        "gcloud", "pubsub", "subscriptions", "add-iam-policy-binding", subscription,
        f"--member={pubsub_agent}", "--role=roles/pubsub.subscriber", project,
    )  # fmt: skip
    # The service's metrics go to Cloud Monitoring (monitoring.timeSeries.create).
    yield project_binding(d, runner, "roles/monitoring.metricWriter")
    # Its units' spans go to Cloud Trace (cloudtrace.traces.patch).
    yield project_binding(d, runner, "roles/cloudtrace.agent")
    yield run(
        "gcloud", "run", "services", "update", d.service.name, f"--region={d.region}",
        f"--update-env-vars=INGEST_WORK_TOPIC={topic_path(d, topic)}", project,
    )  # fmt: skip
