"""Firestore as the IdempotencyStore: create() is put-if-absent, update_time is the version."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from google.api_core import exceptions as gexc
from google.api_core.datetime_helpers import DatetimeWithNanoseconds
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore

from service.adapters.gcp.errors import translate
from service.codec import from_doc, to_doc
from service.models import LedgerRecord, Stored, UnitState
from service.settings import Settings


class FirestoreLedgerStore:
    def __init__(self, client: firestore.AsyncClient, collection: str) -> None:
        self.client = client
        self.collection = client.collection(collection)

    @classmethod
    def from_settings(cls, settings: Settings) -> FirestoreLedgerStore:
        credentials = AnonymousCredentials() if settings.firestore_emulator_host else None
        client = firestore.AsyncClient(
            project=settings.project,
            database=settings.firestore_database,
            credentials=credentials,
        )
        return cls(client, settings.ledger_collection)

    async def get(self, key: str) -> Stored | None:
        try:
            snapshot = await self.collection.document(key).get()
        except Exception as exc:
            raise translate(exc, f"ledger get {key}") from exc
        if not snapshot.exists:
            return None
        return Stored(from_doc(snapshot.to_dict() or {}), _version(snapshot.update_time))

    async def create(self, record: LedgerRecord) -> str | None:
        try:
            result = await self.collection.document(record.key).create(to_doc(record))
        except gexc.AlreadyExists:
            return None
        except Exception as exc:
            raise translate(exc, f"ledger create {record.unit}") from exc
        return _version(result.update_time)

    async def replace(self, record: LedgerRecord, expected_version: str) -> str | None:
        option = self.client.write_option(
            last_update_time=DatetimeWithNanoseconds.from_rfc3339(expected_version)
        )
        try:
            result = await self.collection.document(record.key).update(
                to_doc(record), option=option
            )
        except (gexc.FailedPrecondition, gexc.NotFound):
            return None
        except Exception as exc:
            raise translate(exc, f"ledger update {record.unit}") from exc
        return _version(result.update_time)

    async def list(
        self, state: UnitState | None = None, since: datetime | None = None, limit: int = 100
    ) -> list[Stored]:
        query: Any = self.collection
        if state is not None:
            query = query.where(filter=firestore.FieldFilter("state", "==", state.value))
        if since is not None:
            query = query.where(filter=firestore.FieldFilter("updated_at", ">=", since))
        query = query.order_by("updated_at", direction=firestore.Query.DESCENDING).limit(limit)
        try:
            snapshots = [s async for s in query.stream()]
        except Exception as exc:
            raise translate(exc, "ledger list") from exc
        return [Stored(from_doc(s.to_dict() or {}), _version(s.update_time)) for s in snapshots]

    async def ping(self) -> None:
        try:
            await self.collection.document("_ping").get()
        except Exception as exc:
            raise translate(exc, "ledger ping") from exc

    async def close(self) -> None:
        self.client.close()


def _version(update_time: Any) -> str:
    return str(update_time.rfc3339())
