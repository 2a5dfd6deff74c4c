"""The permission table against the roles the deploy plan grants the service's identity."""

from __future__ import annotations

import pytest

from service.deploy.permissions import API_METHODS, ROLES, Grant, missing
from tests.permission_recorder import (
    KNOWN_GAPS,
    PLAN_CREATES,
    ApiCall,
    Caller,
    breaches,
    rest_method,
    runner_grants,
)

# The API methods the service calls as it ingests (GCS, BigQuery, Firestore), readiness included.
RUNNER_METHODS = (
    "storage.objects.get",
    "storage.objects.list",
    "storage.objects.insert",  # the quarantine
    "storage.objects.rewrite",  # the fast path's staged copy
    "storage.objects.delete",
    "bigquery.datasets.get",
    "bigquery.datasets.list",
    "bigquery.tables.insert",
    "bigquery.tables.get",
    "bigquery.tables.patch",  # a replace_partition load's schema change
    "bigquery.tables.delete",
    "bigquery.jobs.insert",
    "bigquery.jobs.get",
    "google.firestore.v1.Firestore.GetDocument",
    "google.firestore.v1.Firestore.BatchGetDocuments",
    "google.firestore.v1.Firestore.Commit",
    "google.firestore.v1.Firestore.RunQuery",
)


@pytest.fixture(scope="module")
def grants(tmp_path_factory: pytest.TempPathFactory) -> frozenset[Grant]:
    return runner_grants(tmp_path_factory.mktemp("plan"))


def test_the_plan_grants_the_runner_roles_the_table_knows(grants: frozenset[Grant]) -> None:
    assert {g.role for g in grants} <= set(ROLES)
    assert Grant("roles/bigquery.dataEditor", "dataset") in grants
    assert Grant("roles/bigquery.jobUser", "project") in grants


@pytest.mark.parametrize("method", RUNNER_METHODS)
def test_what_the_runner_calls_is_granted(grants: frozenset[Grant], method: str) -> None:
    assert missing(method, grants) == []


@pytest.mark.parametrize("method", ["bigquery.datasets.insert", "storage.buckets.list"])
def test_project_level_calls_are_not_granted(grants: frozenset[Grant], method: str) -> None:
    """dataEditor holds bigquery.datasets.create, but granted on a dataset it creates nothing."""
    assert [n.level for n in missing(method, grants)] == ["project"]


@pytest.mark.parametrize("method", sorted(KNOWN_GAPS))
def test_known_gaps_are_still_gaps(grants: frozenset[Grant], method: str) -> None:
    """Once the plan grants it, take the method off KNOWN_GAPS (tests/permission_recorder.py)."""
    assert missing(method, grants) != []


def test_every_method_names_its_page_and_known_permissions() -> None:
    for method, (needs, page) in API_METHODS.items():
        assert page.startswith("https://cloud.google.com/"), method
        assert needs, method
    for role, (_, page) in ROLES.items():
        assert page.startswith("https://cloud.google.com/iam/docs/roles-permissions/"), role


def runner(call: int = 1) -> Caller:
    return Caller("runner", "BigQueryWarehouse.load_parquet", call)


def test_a_dataset_created_without_looking_first_breaks_the_contract(
    grants: frozenset[Grant],
) -> None:
    blind = [ApiCall(runner(), "bigquery.datasets.insert", 200)]
    assert breaches(blind, grants) == [
        "BigQueryWarehouse.load_parquet called bigquery.datasets.insert; "
        "the runner is not granted bigquery.datasets.create on the project"
    ]
    after_404 = [
        ApiCall(runner(), "bigquery.datasets.get", 404),
        ApiCall(runner(), "bigquery.datasets.insert", 200),
    ]
    assert breaches(after_404, grants) == []
    assert set(PLAN_CREATES) == {"bigquery.datasets.insert"}


def test_an_unlisted_method_breaks_the_contract_whoever_calls_it(
    grants: frozenset[Grant],
) -> None:
    operator = Caller("operator", "PubSubSubscription.pull", 2)
    unknown = [ApiCall(operator, rest_method("PATCH", "http://x/storage/v1/b/bk/o/a%2Fb"))]
    assert breaches(unknown, grants) == [
        "PubSubSubscription.pull called UNKNOWN PATCH /storage/v1/b/bk/o/a/b: "
        "add it to service/deploy/permissions"
    ]


@pytest.mark.parametrize(
    ("verb", "url", "method"),
    [
        ("GET", "https://x/storage/v1/b/bk/o/a%2Fx.csv", "storage.objects.get"),
        ("GET", "https://x/download/storage/v1/b/bk/o/a%2Fx?alt=media", "storage.objects.get"),
        ("POST", "http://x/storage/v1/b/bk/o/a/rewriteTo/b/bk/o/c", "storage.objects.rewrite"),
        ("POST", "http://x/upload/storage/v1/b/bk/o?uploadType=media", "storage.objects.insert"),
        ("GET", "http://x/storage/v1/b?project=p", "storage.buckets.list"),
        ("POST", "http://x/upload/bigquery/v2/projects/p/jobs", "bigquery.jobs.insert"),
        ("GET", "http://x/bigquery/v2/projects/p/datasets/d", "bigquery.datasets.get"),
        ("GET", "http://x/bigquery/v2/projects/p/datasets/d/tables/t", "bigquery.tables.get"),
        ("PATCH", "http://x/bigquery/v2/projects/p/datasets/d/tables/t", "bigquery.tables.patch"),
    ],
)
def test_rest_requests_are_named_by_their_api_method(verb: str, url: str, method: str) -> None:
    assert rest_method(verb, url) == method
