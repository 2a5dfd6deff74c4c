"""Google Cloud adapters: the only package that imports Google's SDKs."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from service.ports import IdempotencyStore, ObjectStore, Warehouse
    from service.settings import Settings


def build(settings: Settings) -> tuple[ObjectStore, Warehouse, IdempotencyStore]:
    from service.adapters.gcp.bigquery import BigQueryWarehouse
    from service.adapters.gcp.credentials import needing_credentials
    from service.adapters.gcp.firestore import FirestoreLedgerStore
    from service.adapters.gcp.gcs import GcsObjectStore

    assert settings.project is not None
    with needing_credentials():
        return (
            GcsObjectStore.from_settings(settings),
            BigQueryWarehouse.from_settings(settings),
            FirestoreLedgerStore.from_settings(settings),
        )
