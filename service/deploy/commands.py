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


Built = Iterator[tuple[tuple[str, ...], str | None]]


def run(*argv: str) -> tuple[tuple[str, ...], None]:
    return argv, None


def member(account_id: str, project: str) -> str:
    return f"serviceAccount:{account_id}@{project}.iam.gserviceaccount.com"


def image_uri(d: Deployment) -> str:
    i = d.image
    return f"{d.region}-docker.pkg.dev/{d.project}/{i.repository}/{i.name}:{i.tag}"


def topic_path(d: Deployment, topic: str) -> str:
    return f"projects/{d.project}/topics/{topic}"


def create_bucket(d: Deployment, bucket: str, location: str) -> tuple[tuple[str, ...], None]:
    # Uniform access: the quarantine's role is conditional on a prefix, which needs it.
    return run(
        "gcloud",
        "storage",
        "buckets",
        "create",
        f"gs://{bucket}",
        f"--location={location}",
        "--uniform-bucket-level-access",
        f"--project={d.project}",
    )


def bucket_binding(
    d: Deployment, bucket: str, who: str, role: str, condition: str | None = None
) -> tuple[tuple[str, ...], None]:
    argv = ["gcloud", "storage", "buckets", "add-iam-policy-binding", f"gs://{bucket}"]
    argv += [f"--member={who}", f"--role={role}"]
    if condition:
        argv.append(f"--condition={condition}")
    return run(*argv, f"--project={d.project}")


def project_binding(d: Deployment, who: str, role: str) -> tuple[tuple[str, ...], None]:
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
