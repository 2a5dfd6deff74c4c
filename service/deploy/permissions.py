"""The IAM permission behind every Google API method the GCP adapters call, and what the roles
the deploy plan grants the service's identity contain. Pure: no I/O.

The emulators have no IAM, so a missing grant shows only on real Google Cloud. The emulator
suite records the API methods the adapters call (tests/permission_recorder.py) and fails when
the runner calls one that ``runner_grants(plan)`` does not cover. Each entry names the page it
was checked against. A permission is checked at a level (the project, one dataset, one bucket's
objects, one topic); a role granted on a dataset or bucket covers only checks at that level,
never a project-level one such as ``bigquery.datasets.create``.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.deploy.commands import Command

BQ = "https://cloud.google.com/bigquery/docs/reference/rest/v2/"
GCS = "https://cloud.google.com/storage/docs/json_api/v1/"
FIRESTORE = "https://cloud.google.com/firestore/docs/security/iam#required_permissions"
PUBSUB = "https://cloud.google.com/pubsub/docs/access-control#required_permissions"
ROLES_PAGE = "https://cloud.google.com/iam/docs/roles-permissions/"
WRITE_API = "google.cloud.bigquery.storage.v1.BigQueryWrite."
WRITE_PAGE = "https://cloud.google.com/bigquery/docs/write-api#required_permissions"


@dataclass(frozen=True)
class Needs:
    """One permission an API method needs, and the level IAM checks it at."""

    permission: str
    level: str  # project | dataset | bucket | topic | subscription


# API method (REST name, or gRPC service.Method) -> what it needs, and the page that says so.
API_METHODS: dict[str, tuple[tuple[Needs, ...], str]] = {
    "storage.objects.get": ((Needs("storage.objects.get", "bucket"),), GCS + "objects/get"),
    "storage.objects.list": ((Needs("storage.objects.list", "bucket"),), GCS + "objects/list"),
    "storage.objects.insert": (
        (Needs("storage.objects.create", "bucket"),),
        GCS + "objects/insert",
    ),
    "storage.objects.rewrite": (
        (Needs("storage.objects.get", "bucket"), Needs("storage.objects.create", "bucket")),
        GCS + "objects/rewrite",
    ),
    "storage.objects.delete": (
        (Needs("storage.objects.delete", "bucket"),),
        GCS + "objects/delete",
    ),
    "storage.buckets.list": ((Needs("storage.buckets.list", "project"),), GCS + "buckets/list"),
    "bigquery.datasets.get": ((Needs("bigquery.datasets.get", "dataset"),), BQ + "datasets/get"),
    # Lists the datasets the caller may get: a dataset-level grant is enough.
    "bigquery.datasets.list": (
        (Needs("bigquery.datasets.get", "dataset"),),
        "https://cloud.google.com/bigquery/docs/listing-datasets#required_role",
    ),
    "bigquery.datasets.insert": (
        (Needs("bigquery.datasets.create", "project"),),
        BQ + "datasets/insert",
    ),
    "bigquery.tables.insert": ((Needs("bigquery.tables.create", "dataset"),), BQ + "tables/insert"),
    "bigquery.tables.get": ((Needs("bigquery.tables.get", "dataset"),), BQ + "tables/get"),
    "bigquery.tables.patch": (
        (Needs("bigquery.tables.update", "dataset"), Needs("bigquery.tables.get", "dataset")),
        BQ + "tables/patch",
    ),
    "bigquery.tables.list": ((Needs("bigquery.tables.list", "dataset"),), BQ + "tables/list"),
    "bigquery.tables.delete": ((Needs("bigquery.tables.delete", "dataset"),), BQ + "tables/delete"),
    # A load or query job: jobs.create on the project, and the data rights on its tables.
    "bigquery.jobs.insert": (
        (
            Needs("bigquery.jobs.create", "project"),
            Needs("bigquery.tables.updateData", "dataset"),
            Needs("bigquery.tables.getData", "dataset"),
        ),
        BQ + "jobs/insert",
    ),
    # One's own jobs: whoever may create jobs may read them back.
    "bigquery.jobs.get": ((Needs("bigquery.jobs.create", "project"),), BQ + "jobs/get"),
    "bigquery.jobs.getQueryResults": (
        (Needs("bigquery.jobs.create", "project"),),
        BQ + "jobs/getQueryResults",
    ),
    "bigquery.jobs.query": (
        (Needs("bigquery.jobs.create", "project"), Needs("bigquery.tables.getData", "dataset")),
        BQ + "jobs/query",
    ),
    # The Storage Write API: every call on a table's streams needs updateData on its dataset
    # (a PERMISSION_DENIED names it TABLES_UPDATE_DATA).
    **{
        WRITE_API + method: ((Needs("bigquery.tables.updateData", "dataset"),), WRITE_PAGE)
        for method in (
            "CreateWriteStream",
            "AppendRows",
            "FinalizeWriteStream",
            "BatchCommitWriteStreams",
            "GetWriteStream",
        )
    },
    "google.firestore.v1.Firestore.GetDocument": (
        (Needs("datastore.entities.get", "project"),),
        FIRESTORE,
    ),
    "google.firestore.v1.Firestore.BatchGetDocuments": (
        (Needs("datastore.entities.get", "project"),),
        FIRESTORE,
    ),
    "google.firestore.v1.Firestore.Commit": (
        (
            Needs("datastore.entities.create", "project"),
            Needs("datastore.entities.update", "project"),
        ),
        FIRESTORE,
    ),
    "google.firestore.v1.Firestore.RunQuery": (
        (Needs("datastore.entities.list", "project"),),
        FIRESTORE,
    ),
    "google.pubsub.v1.Publisher.Publish": ((Needs("pubsub.topics.publish", "topic"),), PUBSUB),
    "google.pubsub.v1.Subscriber.Pull": (
        (Needs("pubsub.subscriptions.consume", "subscription"),),
        PUBSUB,
    ),
    "google.pubsub.v1.Subscriber.Acknowledge": (
        (Needs("pubsub.subscriptions.consume", "subscription"),),
        PUBSUB,
    ),
    "google.pubsub.v1.Subscriber.ModifyAckDeadline": (
        (Needs("pubsub.subscriptions.consume", "subscription"),),
        PUBSUB,
    ),
}

# The permissions (of those above) each role the plan grants contains.
ROLES: dict[str, tuple[frozenset[str], str]] = {
    "roles/storage.objectViewer": (
        frozenset({"storage.objects.get", "storage.objects.list"}),
        ROLES_PAGE + "storage#storage.objectViewer",
    ),
    "roles/storage.objectUser": (
        frozenset(
            {
                "storage.objects.create",
                "storage.objects.delete",
                "storage.objects.get",
                "storage.objects.list",
                "storage.objects.update",
            }
        ),
        ROLES_PAGE + "storage#storage.objectUser",
    ),
    "roles/bigquery.dataEditor": (
        frozenset(
            {
                "bigquery.datasets.create",  # only where granted on the project
                "bigquery.datasets.get",
                "bigquery.tables.create",
                "bigquery.tables.delete",
                "bigquery.tables.get",
                "bigquery.tables.getData",
                "bigquery.tables.list",
                "bigquery.tables.update",
                "bigquery.tables.updateData",
            }
        ),
        ROLES_PAGE + "bigquery#bigquery.dataEditor",
    ),
    "roles/bigquery.jobUser": (
        frozenset({"bigquery.jobs.create"}),
        ROLES_PAGE + "bigquery#bigquery.jobUser",
    ),
    "roles/cloudtrace.agent": (
        frozenset({"cloudtrace.traces.patch"}),
        ROLES_PAGE + "cloudtrace#cloudtrace.agent",
    ),
    "roles/datastore.user": (
        frozenset(
            {
                "datastore.entities.create",
                "datastore.entities.delete",
                "datastore.entities.get",
                "datastore.entities.list",
                "datastore.entities.update",
            }
        ),
        ROLES_PAGE + "datastore#datastore.user",
    ),
    "roles/monitoring.metricWriter": (
        frozenset({"monitoring.timeSeries.create", "monitoring.metricDescriptors.create"}),
        ROLES_PAGE + "monitoring#monitoring.metricWriter",
    ),
    "roles/pubsub.publisher": (
        frozenset({"pubsub.topics.publish"}),
        ROLES_PAGE + "pubsub#pubsub.publisher",
    ),
    "roles/pubsub.subscriber": (
        frozenset({"pubsub.subscriptions.consume"}),
        ROLES_PAGE + "pubsub#pubsub.subscriber",
    ),
}

# The level a binding command grants at, by the command's first words.
BINDING_LEVELS = {
    ("gcloud", "projects", "add-iam-policy-binding"): "project",
    ("bq", "add-iam-policy-binding"): "dataset",
    ("gcloud", "storage", "buckets", "add-iam-policy-binding"): "bucket",
    ("gcloud", "pubsub", "topics", "add-iam-policy-binding"): "topic",
    ("gcloud", "pubsub", "subscriptions", "add-iam-policy-binding"): "subscription",
}


@dataclass(frozen=True)
class Grant:
    role: str
    level: str


def grants_to(commands: list[Command], member: str) -> frozenset[Grant]:
    """The roles the plan's binding commands give ``member``, with the level of each."""
    found = set()
    for command in commands:
        argv = command.argv
        if f"--member={member}" not in argv:
            continue
        level = next((v for k, v in BINDING_LEVELS.items() if argv[: len(k)] == k), None)
        role = next((a.removeprefix("--role=") for a in argv if a.startswith("--role=")), None)
        if level is not None and role is not None:
            found.add(Grant(role, level))
    return frozenset(found)


def missing(api_method: str, grants: frozenset[Grant]) -> list[Needs]:
    """What ``api_method`` needs that no grant covers (a KeyError for a method not listed)."""
    needs, _ = API_METHODS[api_method]
    return [n for n in needs if not any(_covers(g, n) for g in grants)]


def _covers(grant: Grant, needs: Needs) -> bool:
    permissions, _ = ROLES.get(grant.role, (frozenset(), ""))
    if needs.permission not in permissions:
        return False
    return grant.level in ("project", needs.level)
