"""Building the image on Cloud Build, as its own identity, with the user's pipelines in it."""

from __future__ import annotations

from service.deploy.commands import (
    Built,
    Step,
    bucket_binding,
    create_bucket,
    gcloud,
    image_uri,
    member,
    project_binding,
)
from service.deploy.deployment_file import Deployment


def image(d: Deployment) -> Built:
    i = d.image
    yield gcloud(
        d,
        "artifacts repositories create",
        i.repository,
        "--repository-format=docker",
        f"--location={d.region}",
    )
    # gcloud uploads the source here; the build's identity reads it from here (and nothing else).
    yield create_bucket(d, i.staging_bucket, d.region)
    builder = member(i.service_account, d.project)
    yield gcloud(
        d,
        "artifacts repositories add-iam-policy-binding",
        i.repository,
        f"--location={d.region}",
        f"--member={builder}",
        "--role=roles/artifactregistry.writer",
    )
    yield bucket_binding(d, i.staging_bucket, builder, "roles/storage.objectViewer")
    # Build logs go to Cloud Logging (cloudbuild.yaml: CLOUD_LOGGING_ONLY).
    yield project_binding(d, builder, "roles/logging.logWriter")
    yield _submit(d)


def _submit(d: Deployment) -> Step:
    """The context is the repository (an absolute path: the script runs from anywhere), and
    cloudbuild.yaml hands the pipelines folder to ``docker build`` as CONFIG."""
    i, b = d.image, d.build
    return gcloud(
        d,
        "builds submit",
        str(b.root),
        f"--config={b.cloudbuild}",
        f"--substitutions=_IMAGE={image_uri(d)},_CONFIG={b.config}",
        f"--service-account=projects/{d.project}/serviceAccounts/"
        f"{i.service_account}@{d.project}.iam.gserviceaccount.com",
        f"--gcs-source-staging-dir=gs://{i.staging_bucket}/source",
        f"--region={d.region}",
    )
