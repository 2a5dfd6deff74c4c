"""Records every Google API method the GCP adapters call, and who calls it (test support).

Installed by the emulator fixtures for the session (tests/emulator_fixtures.py), never in
production code. Each public async method of an adapter class is wrapped to mark the calls made
while it runs, with the identity the call would have on Google Cloud: ``runner`` when service
code (not the CLI) called the adapter, ``operator`` for the CLI; calls a test makes itself to
set up data are not marked. The calls themselves are seen where every client sends them: the
authorized HTTP session (Cloud Storage, BigQuery) and the GAPIC method wrapper (Firestore,
Pub/Sub), whose publishing thread is made to carry the caller's context.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import itertools
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import yaml
from google.api_core.gapic_v1 import method as gapic_method
from google.api_core.gapic_v1 import method_async as gapic_method_async
from google.auth.transport.requests import AuthorizedSession
from google.cloud.pubsub_v1.publisher._batch import thread as publisher_batch

from service.adapters.gcp import bigquery, bigquery_write, firestore, gcs, pubsub
from service.deploy.commands import member
from service.deploy.deployment_file import load_deployment
from service.deploy.permissions import API_METHODS, Grant, grants_to, missing
from service.deploy.plan import plan

ROOT = Path(__file__).resolve().parent.parent
SERVICE = ROOT / "service"
EXAMPLES = ROOT / "examples"
# Adapter classes whose public async methods mark the calls made while they run.
ADAPTERS = (
    gcs.GcsObjectStore,
    bigquery.BigQueryWarehouse,
    bigquery_write.BigQueryStreamWriter,
    firestore.FirestoreLedgerStore,
    pubsub.PubSubTopic,
    pubsub.PubSubOutcomePublisher,
    pubsub.PubSubSubscription,
)
# REST calls of Cloud Storage and BigQuery by (HTTP method, path pattern): the API method.
REST_METHODS = tuple(
    (verb, re.compile(pattern), name)
    for verb, pattern, name in (
        ("POST", r"/storage/v1/b/[^/]+/o/.+/rewriteTo/b/[^/]+/o/.+", "storage.objects.rewrite"),
        ("GET", r"/(download/)?storage/v1/b/[^/]+/o/.+", "storage.objects.get"),
        ("DELETE", r"/storage/v1/b/[^/]+/o/.+", "storage.objects.delete"),
        ("GET", r"/storage/v1/b/[^/]+/o", "storage.objects.list"),
        ("POST", r"/upload/storage/v1/b/[^/]+/o", "storage.objects.insert"),
        ("PUT", r"/upload/storage/v1/b/[^/]+/o", "storage.objects.insert"),
        ("GET", r"/storage/v1/b", "storage.buckets.list"),
        ("POST", r"/storage/v1/b", "storage.buckets.insert"),
        ("POST", r"(/upload)?/bigquery/v2/projects/[^/]+/jobs", "bigquery.jobs.insert"),
        ("PUT", r"/upload/bigquery/v2/projects/[^/]+/jobs", "bigquery.jobs.insert"),
        ("GET", r"/bigquery/v2/projects/[^/]+/jobs/[^/]+", "bigquery.jobs.get"),
        ("GET", r"/bigquery/v2/projects/[^/]+/queries/[^/]+", "bigquery.jobs.getQueryResults"),
        ("POST", r"/bigquery/v2/projects/[^/]+/queries", "bigquery.jobs.query"),
        ("GET", r"/bigquery/v2/projects/[^/]+/datasets/[^/]+/tables/[^/]+", "bigquery.tables.get"),
        (
            "PATCH",
            r"/bigquery/v2/projects/[^/]+/datasets/[^/]+/tables/[^/]+",
            "bigquery.tables.patch",
        ),
        (
            "DELETE",
            r"/bigquery/v2/projects/[^/]+/datasets/[^/]+/tables/[^/]+",
            "bigquery.tables.delete",
        ),
        ("GET", r"/bigquery/v2/projects/[^/]+/datasets/[^/]+/tables", "bigquery.tables.list"),
        ("POST", r"/bigquery/v2/projects/[^/]+/datasets/[^/]+/tables", "bigquery.tables.insert"),
        ("GET", r"/bigquery/v2/projects/[^/]+/datasets/[^/]+", "bigquery.datasets.get"),
        ("GET", r"/bigquery/v2/projects/[^/]+/datasets", "bigquery.datasets.list"),
        ("POST", r"/bigquery/v2/projects/[^/]+/datasets", "bigquery.datasets.insert"),
    )
)


@dataclass(frozen=True)
class Caller:
    identity: str  # runner | operator
    adapter_method: str
    call: int  # one adapter method call: the API calls it made share it


@dataclass(frozen=True)
class ApiCall:
    caller: Caller
    method: str  # the API method, or "UNKNOWN ..." for a request no pattern knows
    status: int | None = None  # HTTP status, where there is one


CALLER: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("caller", default=None)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[ApiCall] = []
        self._ids = itertools.count()

    def install(self, patch: pytest.MonkeyPatch) -> None:
        for cls in ADAPTERS:
            for name, fn in list(vars(cls).items()):
                if name.startswith("_"):
                    continue
                if inspect.iscoroutinefunction(fn):
                    patch.setattr(cls, name, self._marking(f"{cls.__name__}.{name}", fn))
                elif inspect.isasyncgenfunction(fn):
                    patch.setattr(cls, name, self._marking_stream(f"{cls.__name__}.{name}", fn))
        patch.setattr(AuthorizedSession, "request", self._http(AuthorizedSession.request))
        for owner in (gapic_method._GapicCallable, gapic_method_async._AsyncGapicCallable):
            patch.setattr(owner, "__call__", self._rpc(owner.__call__))
        batch = publisher_batch.Batch
        patch.setattr(batch, "__init__", _keeping_context(batch.__init__))
        patch.setattr(batch, "_commit", _in_kept_context(batch._commit))

    def _caller(self, adapter_method: str) -> Caller | None:
        identity = _identity(sys._getframe(2))
        return None if identity is None else Caller(identity, adapter_method, next(self._ids))

    def _marking(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        async def marked(*args: Any, **kwargs: Any) -> Any:
            if CALLER.get() is not None:
                return await fn(*args, **kwargs)
            token = CALLER.set(self._caller(name))
            try:
                return await fn(*args, **kwargs)
            finally:
                CALLER.reset(token)

        return marked

    def _marking_stream(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        async def marked(*args: Any, **kwargs: Any) -> Any:
            caller = CALLER.get() or self._caller(name)
            token = CALLER.set(caller)
            try:
                async for item in fn(*args, **kwargs):
                    yield item
            finally:
                # Finished in another task's context: nothing of ours is left there.
                with contextlib.suppress(ValueError):
                    CALLER.reset(token)

        return marked

    def _http(self, request: Callable[..., Any]) -> Callable[..., Any]:
        recorder = self

        @functools.wraps(request)
        def recorded(session: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            response = request(session, method, url, *args, **kwargs)
            caller = CALLER.get()
            if caller is not None:
                name = rest_method(method, url)
                recorder.calls.append(ApiCall(caller, name, response.status_code))
            return response

        return recorded

    def _rpc(self, call: Callable[..., Any]) -> Callable[..., Any]:
        recorder = self

        @functools.wraps(call)
        def recorded(callable_: Any, *args: Any, **kwargs: Any) -> Any:
            caller = CALLER.get()
            if caller is not None:
                recorder.calls.append(ApiCall(caller, rpc_method(callable_)))
            return call(callable_, *args, **kwargs)

        return recorded


def rest_method(verb: str, url: str) -> str:
    path = unquote(urlsplit(url).path)
    for method, pattern, name in REST_METHODS:
        if method == verb.upper() and pattern.fullmatch(path):
            return name
    return f"UNKNOWN {verb} {path}"


def rpc_method(callable_: Any) -> str:
    """``google.firestore.v1.Firestore.Commit`` from the wrapped stub's ``/pkg.Service/Method``."""
    target = inspect.unwrap(callable_._target)
    raw = getattr(target, "_method", b"")
    path = raw.decode() if isinstance(raw, bytes) else str(raw)
    return path.strip("/").replace("/", ".") or f"UNKNOWN rpc {target!r}"


def _identity(frame: Any) -> str | None:
    """runner or operator, by the service code on the stack; None for a test's own call."""
    identity = None
    while frame is not None:
        path = Path(frame.f_code.co_filename)
        if path.is_relative_to(SERVICE) and not path.is_relative_to(SERVICE / "adapters"):
            if path.is_relative_to(SERVICE / "cli"):
                return "operator"
            identity = "runner"
        frame = frame.f_back
    return identity


def _keeping_context(init: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(init)
    def kept(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self._recorded_context = contextvars.copy_context()

    return kept


def _in_kept_context(commit: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(commit)
    def run(self: Any) -> Any:
        context = getattr(self, "_recorded_context", None)
        if context is None:
            return commit(self)
        return context.copy().run(commit, self)

    return run


# Calls the plan does not cover yet, each with the reason; test_deploy_permissions.py fails
# once the plan covers one, so that it is taken off this list.
KNOWN_GAPS: dict[str, str] = {}
# Creating a resource the plan creates: only a deployment without it gets there, after a 404.
PLAN_CREATES = {"bigquery.datasets.insert": "bigquery.datasets.get"}


def breaches(calls: list[ApiCall], grants: frozenset[Grant]) -> list[str]:
    """Why each recorded call breaks the contract: not in the table, or (by the runner) not
    covered by what the plan grants it."""
    problems = []
    for index, call in enumerate(calls):
        where = call.caller.adapter_method
        if call.method not in API_METHODS:
            problems.append(f"{where} called {call.method}: add it to service/deploy/permissions")
            continue
        if call.caller.identity != "runner" or call.method in KNOWN_GAPS:
            continue
        if _after_not_found(calls[:index], call):
            continue
        lacking = ", ".join(
            f"{n.permission} on the {n.level}" for n in missing(call.method, grants)
        )
        if lacking:
            problems.append(f"{where} called {call.method}; the runner is not granted {lacking}")
    return problems


def _after_not_found(earlier: list[ApiCall], call: ApiCall) -> bool:
    lookup = PLAN_CREATES.get(call.method)
    return lookup is not None and any(
        e.caller.call == call.caller.call and e.method == lookup and e.status == 404
        for e in earlier
    )


def runner_grants(directory: Path) -> frozenset[Grant]:
    """What ``ingest deploy plan`` grants the service's identity, for the example pipelines."""
    config = {
        "project": "demo-project-1",
        "region": "europe-west1",
        "pipelines": str(EXAMPLES / "pipelines.toml"),
        "buckets": {"landing": "EU"},
        "bigquery": {"location": "EU"},
        "firestore": {"location": "eur3"},
        "outcomes": {"topic": "ingest-outcomes"},
    }
    path = directory / "eventarc.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    d = load_deployment(path)
    return grants_to(plan(d), member(d.service.service_account, d.project))
