"""Google Cloud adapters: the only package that imports Google's SDKs."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from service.ports import IdempotencyStore, ObjectStore, StreamWriter, Warehouse
    from service.settings import Settings


def build(
    settings: Settings,
) -> tuple[ObjectStore, Warehouse, IdempotencyStore, StreamWriter | None]:
    from service.adapters.gcp.bigquery import BigQueryWarehouse
    from service.adapters.gcp.bigquery_write import BigQueryStreamWriter
    from service.adapters.gcp.credentials import needing_credentials
    from service.adapters.gcp.firestore import FirestoreLedgerStore
    from service.adapters.gcp.gcs import GcsObjectStore

    assert settings.project is not None
    with needing_credentials():
        warehouse = BigQueryWarehouse.from_settings(settings)
        # An emulated BigQuery (a REST endpoint) has its Write API on a gRPC port of its own.
        streams = None
        if settings.bigquery_write_endpoint:
            streams = BigQueryStreamWriter.plaintext(
                settings.bigquery_write_endpoint, settings.project, warehouse.prepare_table
            )
        elif not settings.bigquery_endpoint:
            streams = BigQueryStreamWriter.lazy(settings.project, warehouse.prepare_table)
        return (
            GcsObjectStore.from_settings(settings),
            warehouse,
            FirestoreLedgerStore.from_settings(settings),
            streams,
        )
