"""Cloud Storage object resources (StorageObjectData / JSON_API_V1) into typed values."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from service.errors import EnvelopeError
from service.events.event_types import FINALIZE_TYPES, NON_INGEST_TYPES
from service.events.fields import int64, text, timestamp
from service.models import EventMeta, Ignored, ObjectFinalized, ObjectInfo, ObjectRef

# Cloud Storage bucket names: lower-case letters, digits, '-', '_', '.'; 3 to 222 characters.
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")
MAX_OBJECT_NAME_BYTES = 1024
# Cloud Storage refuses object names under this prefix, so an event naming one is false.
RESERVED_OBJECT_PREFIX = ".well-known/acme-challenge/"


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
    if data is not None and not isinstance(data, Mapping):
        raise EnvelopeError("storage event data is not an object resource")
    resource: Mapping[str, Any] = data or {}
    info = object_info(resource, bucket=bucket, name=name, generation=generation)
    return ObjectFinalized(meta, info, int64(resource.get("metageneration"), "metageneration"))


def object_info(
    resource: Mapping[str, Any],
    *,
    bucket: str | None = None,
    name: str | None = None,
    generation: int | None = None,
) -> ObjectInfo:
    """One generation from an object resource (JSON API names); the keywords fill its gaps."""
    bucket_name = text(resource.get("bucket"), "bucket") or bucket
    object_name = text(resource.get("name"), "name") or name
    if not bucket_name or not object_name:
        raise EnvelopeError("storage event names no bucket and object")
    gen = int64(resource.get("generation"), "generation")
    ref = ObjectRef(
        _bucket(bucket_name), _object_name(object_name), gen if gen is not None else generation
    )
    if ref.generation is None or ref.generation <= 0:
        raise EnvelopeError("storage event names no object generation")
    size = int64(resource.get("size"), "size") or 0
    if size < 0:
        raise EnvelopeError("size is negative")
    return ObjectInfo(
        ref=ref,
        size=size,
        content_type=text(resource.get("contentType"), "contentType"),
        content_encoding=text(resource.get("contentEncoding"), "contentEncoding"),
        md5_base64=text(resource.get("md5Hash"), "md5Hash"),
        crc32c_base64=text(resource.get("crc32c"), "crc32c"),
        updated=timestamp(resource.get("updated")),
    )


def _bucket(name: str) -> str:
    if not BUCKET_NAME.fullmatch(name):
        raise EnvelopeError("bucket is not a valid Cloud Storage bucket name")
    return name


def _object_name(name: str) -> str:
    """Cloud Storage's rules (https://cloud.google.com/storage/docs/naming-objects): 1 to 1024
    bytes of UTF-8, no CR or LF, not "." or "..", not under ``.well-known/acme-challenge/``.
    Anything else is a valid name (NUL and other controls are only discouraged): the stores
    must hold it, and an event naming an object that does not exist fails as not found."""
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError as exc:  # a lone surrogate from a JSON "\\ud800" escape
        raise EnvelopeError("object name is not valid Unicode") from exc
    if (
        size > MAX_OBJECT_NAME_BYTES
        or "\r" in name
        or "\n" in name
        or name in (".", "..")
        or name.startswith(RESERVED_OBJECT_PREFIX)
    ):
        raise EnvelopeError("object name is not a valid Cloud Storage object name")
    return name


def split_source(source: str) -> tuple[str | None, str | None]:
    """(bucket, object) from ``//storage.googleapis.com/projects/_/buckets/B[/objects/N]``."""
    marker = "/buckets/"
    if marker not in source:
        return None, None
    rest = source.split(marker, 1)[1]
    bucket, _, tail = rest.partition("/objects/")
    return bucket or None, tail or None
