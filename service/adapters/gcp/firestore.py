"""Firestore as the IdempotencyStore: create() is put-if-absent, update_time is the version.

Each primitive is one RPC: get is GetDocument; create and replace are one Commit of one whole-
document Write with a precondition (exists=false, or update_time = the version read). No
transactions: the emulator locks them pessimistically and real Firestore retries them under
contention. The hot primitives talk to the SDK's GAPIC client (``client._firestore_api``, with the
client's own database path and routing metadata) with raw protobufs, which is 2-3x less CPU than
the document helpers; list() and count() use the public query API. Every call has a bounded
retry and timeout, and every failure other than the two expected answers (exists, stale version)
is a TransientError: the ledger being unreachable must make the platform redeliver, never
acknowledge.
"""

from __future__ import annotations

from typing import Any

from google.api_core import exceptions as gexc
from google.api_core import retry_async
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore
from google.cloud.firestore_v1.types import document as document_types
from google.cloud.firestore_v1.types import firestore as firestore_types

from service.adapters.gcp import firestore_wire as wire
from service.adapters.gcp.errors import translate
from service.codec import from_doc, to_doc
from service.errors import TransientError
from service.models import LedgerRecord, Stored, UnitState
from service.ports import EVERY_RECORD, LedgerQuery
from service.settings import Settings

# Seconds one ledger call may take, retries included: well inside the shortest ack deadline.
DEFAULT_TIMEOUT = 8.0
# The raw protobuf class of a commit request (see firestore_wire for why raw).
CommitRequestPb: Any = firestore_types.CommitRequest.pb()
# Answers worth another try within the call's timeout. Should a retried create have landed the
# first time after all, it reads as "exists": the unit then answers busy until its lease ends.
RETRYABLE = (gexc.ServiceUnavailable, gexc.ResourceExhausted, gexc.InternalServerError)


class FirestoreLedgerStore:
    def __init__(
        self, client: firestore.AsyncClient, collection: str, *, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.client = client
        self.collection_id = collection
        self.collection = client.collection(collection)
        self.timeout = timeout
        self._retry = retry_async.AsyncRetry(
            initial=0.05,
            maximum=1.0,
            multiplier=2.0,
            predicate=retry_async.if_exception_type(*RETRYABLE),
            timeout=timeout,
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, *, timeout: float = DEFAULT_TIMEOUT
    ) -> FirestoreLedgerStore:
        # The SDK finds the emulator through FIRESTORE_EMULATOR_HOST itself.
        credentials = AnonymousCredentials() if settings.firestore_emulator_host else None
        client = firestore.AsyncClient(
            project=settings.project,
            database=settings.firestore_database,
            credentials=credentials,
        )
        return cls(client, settings.ledger_collection, timeout=timeout)

    def _call(self) -> dict[str, Any]:
        return {"retry": self._retry, "timeout": self.timeout}

    def _path(self, key: str) -> str:
        return f"{self.client._database_string}/documents/{self.collection_id}/{key}"

    async def _commit(self, write: Any) -> str:
        """One write in one commit RPC; the new update time is the version."""
        request = firestore_types.CommitRequest.wrap(
            CommitRequestPb(database=self.client._database_string, writes=[write])
        )
        # Commit: datastore.entities.create/update (datastore.user on the project). A document
        # sustains about one write per second; retried here on UNAVAILABLE/RESOURCE_EXHAUSTED.
        response = await self.client._firestore_api.commit(
            request=request, metadata=self.client._rpc_metadata, **self._call()
        )
        result = firestore_types.CommitResponse.pb(response).write_results[0]
        return wire.version_of(result.update_time)

    async def get(self, key: str) -> Stored | None:
        try:
            # GetDocument: datastore.entities.get (datastore.user); retried as above.
            found = await self.client._firestore_api.get_document(
                request={"name": self._path(key)},
                metadata=self.client._rpc_metadata,
                **self._call(),
            )
        except gexc.NotFound:
            return None
        except Exception as exc:
            raise _unavailable(exc, f"ledger get {key}") from exc
        document = document_types.Document.pb(found)
        return Stored(
            from_doc(wire.decode_fields(document.fields)), wire.version_of(document.update_time)
        )

    async def create(self, record: LedgerRecord) -> str | None:
        write = wire.write(self._path(record.key), to_doc(record), version=None)
        try:
            return await self._commit(write)
        except gexc.AlreadyExists:
            return None
        except Exception as exc:
            raise _unavailable(exc, f"ledger create {record.unit}") from exc

    async def replace(self, record: LedgerRecord, expected_version: str) -> str | None:
        write = wire.write(self._path(record.key), to_doc(record), version=expected_version)
        try:
            return await self._commit(write)
        except (gexc.FailedPrecondition, gexc.NotFound):
            return None  # changed (or deleted) since that version
        except Exception as exc:
            raise _unavailable(exc, f"ledger update {record.unit}") from exc

    async def list(self, query: LedgerQuery = EVERY_RECORD, limit: int = 100) -> list[Stored]:
        # Filters then newest first: the composite indexes in docs/deploy.md (state or pipeline
        # or both, then updated_at descending). One RunQuery RPC, one read per document.
        found = self._filtered(query)
        found = found.order_by("updated_at", direction=firestore.Query.DESCENDING).limit(limit)
        try:
            # RunQuery: datastore.entities.list; the state + updated_at query needs the
            # composite index in docs/deploy.md (FAILED_PRECONDITION without it).
            snapshots = [s async for s in found.stream(**self._call())]
        except Exception as exc:
            raise _unavailable(exc, "ledger list") from exc
        return [
            Stored(from_doc(s.to_dict() or {}), wire.version_of(s.update_time)) for s in snapshots
        ]

    async def count(self, query: LedgerQuery, *, up_to: int) -> int:
        # One RunAggregationQuery RPC; IAM as for RunQuery (datastore.entities.get and .list, in
        # roles/datastore.user and .viewer). Billed one document read per batch of up to 1,000
        # index entries matched, at least one: the limit caps a count at ceil(up_to / 1000)
        # reads. Equality filters alone are served by the automatic single-field indexes
        # (merged). With ``since`` it is equality plus a range: an aggregation uses the indexes
        # its query would, and that query needs a composite one; ordered newest first it is
        # list()'s query, served by the indexes list() needs (LEDGER_INDEXES in the deploy
        # plan), so no other. Retried like every call here (bounded by the call's timeout).
        found = self._filtered(query)
        if query.since is not None:
            found = found.order_by("updated_at", direction=firestore.Query.DESCENDING)
        found = found.limit(up_to)
        try:
            [[result]] = await found.count(alias="n").get(**self._call())
        except Exception as exc:
            raise _unavailable(exc, "ledger count") from exc
        return int(result.value)

    async def last_completed(self, name_key: str) -> LedgerRecord | None:
        # One RunQuery RPC reading at most one document (datastore.entities.list, in
        # roles/datastore.user). Two equalities and an order on a third field: Firestore serves
        # it only from the composite index (name_key, state, generation desc) in docs/deploy.md
        # and refuses it without one (FAILED_PRECONDITION, a TransientError here: the event is
        # retried until the index exists). Retried like every call here.
        query = (
            self.collection.where(filter=firestore.FieldFilter("name_key", "==", name_key))
            .where(filter=firestore.FieldFilter("state", "==", UnitState.COMPLETED.value))
            .order_by("generation", direction=firestore.Query.DESCENDING)
            .limit(1)
        )
        try:
            found = [s async for s in query.stream(**self._call())]
        except Exception as exc:
            raise _unavailable(exc, "ledger last completed") from exc
        return from_doc(found[0].to_dict() or {}) if found else None

    def _filtered(self, query: LedgerQuery) -> Any:
        """The collection narrowed by the query's filters (equality first, then the range)."""
        found: Any = self.collection
        if query.pipeline is not None:
            found = found.where(filter=firestore.FieldFilter("pipeline", "==", query.pipeline))
        if query.state is not None:
            found = found.where(filter=firestore.FieldFilter("state", "==", query.state.value))
        if query.since is not None:
            found = found.where(filter=firestore.FieldFilter("updated_at", ">=", query.since))
        return found

    async def ping(self) -> None:
        try:
            # BatchGetDocuments of one missing document: datastore.entities.get only.
            await self.collection.document("_ping").get(**self._call())
        except Exception as exc:
            raise _unavailable(exc, "ledger ping") from exc

    async def close(self) -> None:
        # The SDK's AsyncClient has no async close; its gRPC channel exists once a call was made.
        api = getattr(self.client, "_firestore_api_internal", None)
        if api is not None:
            await api.transport.close()
        self.client.close()


def _unavailable(exc: Exception, what: str) -> TransientError:
    """Any failure of the ledger itself is retried: a missing database or permission heals
    once an operator fixes it, and acknowledging instead would lose the event."""
    if isinstance(exc, TransientError):
        return exc
    return TransientError(str(translate(exc, what)))
