"""The pieces every deployment step is built from: a command, and the common IAM bindings."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from service.deploy.deployment_file import Deployment


@dataclass(frozen=True)
class Command:
    step: str  # the heading the command is printed under
    argv: tuple[str, ...]
    capture: str | None = None  # shell variable that keeps the command's output


# One command: its argv, and the shell variable that keeps its output (None: not kept).
Step = tuple[tuple[str, ...], str | None]
Built = Iterator[Step]


def run(*argv: str) -> Step:
    return argv, None


def gcloud(d: Deployment, command: str, *args: str, capture: str | None = None) -> Step:
    """``gcloud COMMAND ARGS... --project=PROJECT``, ``command`` being its words as one says
    them ("pubsub topics create"): every such command runs in the deployment's project."""
    return ("gcloud", *command.split(), *args, f"--project={d.project}"), capture


def member(account_id: str, project: str) -> str:
    return f"serviceAccount:{account_id}@{project}.iam.gserviceaccount.com"


def image_uri(d: Deployment) -> str:
    i = d.image
    return f"{d.region}-docker.pkg.dev/{d.project}/{i.repository}/{i.name}:{i.tag}"


def topic_path(d: Deployment, topic: str) -> str:
    return f"projects/{d.project}/topics/{topic}"


def create_bucket(d: Deployment, bucket: str, location: str) -> Step:
    # Uniform access: the quarantine's role is conditional on a prefix, which needs it.
    return gcloud(
        d,
        "storage buckets create",
        f"gs://{bucket}",
        f"--location={location}",
        "--uniform-bucket-level-access",
    )


def bucket_binding(
    d: Deployment, bucket: str, who: str, role: str, condition: str | None = None
) -> Step:
    conditional = (f"--condition={condition}",) if condition else ()
    return gcloud(
        d,
        "storage buckets add-iam-policy-binding",
        f"gs://{bucket}",
        f"--member={who}",
        f"--role={role}",
        *conditional,
    )


def pubsub_binding(d: Deployment, kind: str, name: str, who: str, role: str) -> Step:
    """``role`` for ``who`` on one Pub/Sub resource; ``kind`` is "topics" or "subscriptions"."""
    return gcloud(
        d, f"pubsub {kind} add-iam-policy-binding", name, f"--member={who}", f"--role={role}"
    )


def project_binding(d: Deployment, who: str, role: str) -> Step:
    # --condition=None: add the binding without a condition and without an interactive prompt.
    return run(
        "gcloud",
        "projects",
        "add-iam-policy-binding",
        d.project,
        f"--member={who}",
        f"--role={role}",
        "--condition=None",
    )
