"""Sweep cursors in Firestore: one small document per sweep, in a collection beside the
ledger's (``<ledger collection>-sweeps``), with the same TTL field as the ledger records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore

from service.adapters.gcp.errors import translate
from service.ports import SweepCursor
from service.settings import Settings

# Seconds one call may take, retries included (the library retries UNAVAILABLE and the like).
TIMEOUT_SECONDS = 8.0
# How long a cursor is kept before the TTL policy on ``expire_at`` may delete it.
RETENTION = timedelta(days=7)


class FirestoreSweepCursors:
    def __init__(self, client: firestore.AsyncClient, collection: str) -> None:
        self.client = client
        self.collection = client.collection(collection)

    @classmethod
    def from_settings(cls, settings: Settings) -> FirestoreSweepCursors:
        credentials = AnonymousCredentials() if settings.firestore_emulator_host else None
        client = firestore.AsyncClient(
            project=settings.project, database=settings.firestore_database, credentials=credentials
        )
        return cls(client, f"{settings.ledger_collection}-sweeps")

    async def get(self, key: str) -> SweepCursor | None:
        try:
            # GetDocument: datastore.entities.get (roles/datastore.user); a read, retried.
            snapshot = await self.collection.document(key).get(timeout=TIMEOUT_SECONDS)
        except Exception as exc:
            raise translate(exc, f"read sweep cursor {key}") from exc
        if not snapshot.exists:
            return None
        doc: dict[str, Any] = snapshot.to_dict() or {}
        return SweepCursor(key, doc.get("page_token"), int(doc.get("published", 0)), doc["done"])

    async def put(self, cursor: SweepCursor) -> None:
        doc = {
            "page_token": cursor.page_token,
            "published": cursor.published,
            "done": cursor.done,
            "expire_at": datetime.now(UTC) + RETENTION,
        }
        try:
            # Commit of one set: datastore.entities.create/update (roles/datastore.user).
            await self.collection.document(cursor.key).set(doc, timeout=TIMEOUT_SECONDS)
        except Exception as exc:
            raise translate(exc, f"write sweep cursor {cursor.key}") from exc

    async def close(self) -> None:
        self.client.close()
