"""Firestore as the IdempotencyStore: create() is put-if-absent, update_time is the version.

Each primitive is one RPC (no transactions: the emulator locks them pessimistically and real
Firestore retries them under contention). Every call has a bounded retry and timeout, and every
failure other than the two expected answers (exists, stale version) is a TransientError: the
ledger being unreachable must make the platform redeliver, never acknowledge.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from google.api_core import exceptions as gexc
from google.api_core import retry_async
from google.api_core.datetime_helpers import DatetimeWithNanoseconds
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore

from service.adapters.gcp.errors import translate
from service.codec import from_doc, to_doc
from service.errors import TransientError
from service.models import LedgerRecord, Stored, UnitState
from service.settings import Settings

# Seconds one ledger call may take, retries included: well inside the shortest ack deadline.
DEFAULT_TIMEOUT = 8.0
# Answers worth another try within the call's timeout (the server did not apply the write).
RETRYABLE = (gexc.ServiceUnavailable, gexc.ResourceExhausted, gexc.InternalServerError)


class FirestoreLedgerStore:
    def __init__(
        self, client: firestore.AsyncClient, collection: str, *, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.client = client
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

    async def get(self, key: str) -> Stored | None:
        try:
            snapshot = await self.collection.document(key).get(**self._call())
        except Exception as exc:
            raise _unavailable(exc, f"ledger get {key}") from exc
        if not snapshot.exists:
            return None
        return Stored(from_doc(snapshot.to_dict() or {}), _version(snapshot.update_time))

    async def create(self, record: LedgerRecord) -> str | None:
        try:
            result = await self.collection.document(record.key).create(
                to_doc(record), **self._call()
            )
        except gexc.AlreadyExists:
            return None
        except Exception as exc:
            raise _unavailable(exc, f"ledger create {record.unit}") from exc
        return _version(result.update_time)

    async def replace(self, record: LedgerRecord, expected_version: str) -> str | None:
        option = self.client.write_option(
            last_update_time=DatetimeWithNanoseconds.from_rfc3339(expected_version)
        )
        try:
            # update() with every field of the record: a whole-record overwrite in one commit.
            result = await self.collection.document(record.key).update(
                to_doc(record), option=option, **self._call()
            )
        except (gexc.FailedPrecondition, gexc.NotFound):
            return None
        except Exception as exc:
            raise _unavailable(exc, f"ledger update {record.unit}") from exc
        return _version(result.update_time)

    async def list(
        self, state: UnitState | None = None, since: datetime | None = None, limit: int = 100
    ) -> list[Stored]:
        # state == X with updated_at >= T, newest first: the composite index in docs/deploy.md.
        query: Any = self.collection
        if state is not None:
            query = query.where(filter=firestore.FieldFilter("state", "==", state.value))
        if since is not None:
            query = query.where(filter=firestore.FieldFilter("updated_at", ">=", since))
        query = query.order_by("updated_at", direction=firestore.Query.DESCENDING).limit(limit)
        try:
            snapshots = [s async for s in query.stream(**self._call())]
        except Exception as exc:
            raise _unavailable(exc, "ledger list") from exc
        return [Stored(from_doc(s.to_dict() or {}), _version(s.update_time)) for s in snapshots]

    async def ping(self) -> None:
        try:
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


def _version(update_time: Any) -> str:
    return str(update_time.rfc3339())
