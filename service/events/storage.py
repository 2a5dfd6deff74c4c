"""Cloud Storage object resources (StorageObjectData / JSON_API_V1) into typed values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from service.errors import EnvelopeError
from service.events.fields import int64, text, timestamp
from service.models import EventMeta, Ignored, ObjectFinalized, ObjectInfo, ObjectRef

# Storage event types that mean "a new object generation exists"; each name its producer uses.
FINALIZE_TYPES = frozenset(
    {
        "google.cloud.storage.object.v1.finalized",  # Eventarc CloudEvent
        "OBJECT_FINALIZE",  # Pub/Sub notification attribute eventType
        "google.storage.object.finalize",  # legacy background function event
    }
)
# Storage event types we understand and deliberately do not ingest.
NON_INGEST_TYPES = {
    "google.cloud.storage.object.v1.deleted": "object deleted",
    "google.cloud.storage.object.v1.archived": "object archived",
    "google.cloud.storage.object.v1.metadataUpdated": "metadata updated",
    "OBJECT_DELETE": "object deleted",
    "OBJECT_ARCHIVE": "object archived",
    "OBJECT_METADATA_UPDATE": "metadata updated",
    "google.storage.object.delete": "object deleted",
    "google.storage.object.archive": "object archived",
    "google.storage.object.metadataUpdate": "metadata updated",
}


def storage_event(
    meta: EventMeta,
    data: Any,
    *,
    bucket: str | None = None,
    name: str | None = None,
    generation: int | None = None,
) -> ObjectFinalized | Ignored:
    """Build the typed event; ``bucket``/``name``/``generation`` fill gaps left by the data."""
    if meta.event_type in NON_INGEST_TYPES:
        return Ignored(meta, NON_INGEST_TYPES[meta.event_type])
    if meta.event_type not in FINALIZE_TYPES:
        return Ignored(meta, "unknown storage event type")
    resource: Mapping[str, Any] = data if isinstance(data, Mapping) else {}
    if data is not None and not isinstance(data, Mapping):
        raise EnvelopeError("storage event data is not an object resource")
    bucket_name = text(resource.get("bucket"), "bucket") or bucket
    object_name = text(resource.get("name"), "name") or name
    if not bucket_name or not object_name:
        raise EnvelopeError("storage event names no bucket and object")
    gen = int64(resource.get("generation"), "generation")
    info = ObjectInfo(
        ref=ObjectRef(bucket_name, object_name, gen if gen is not None else generation),
        size=int64(resource.get("size"), "size") or 0,
        content_type=text(resource.get("contentType"), "contentType"),
        content_encoding=text(resource.get("contentEncoding"), "contentEncoding"),
        md5_base64=text(resource.get("md5Hash"), "md5Hash"),
        crc32c_base64=text(resource.get("crc32c"), "crc32c"),
        updated=timestamp(resource.get("updated")),
    )
    if info.ref.generation is None:
        raise EnvelopeError("storage event names no object generation")
    return ObjectFinalized(meta, info, int64(resource.get("metageneration"), "metageneration"))


def split_source(source: str) -> tuple[str | None, str | None]:
    """(bucket, object) from ``//storage.googleapis.com/projects/_/buckets/B[/objects/N]``."""
    marker = "/buckets/"
    if marker not in source:
        return None, None
    rest = source.split(marker, 1)[1]
    bucket, _, tail = rest.partition("/objects/")
    return bucket or None, tail or None
