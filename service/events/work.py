"""Work messages: one unit each, published by a sweep's fan-out and delivered back by push.

Written and read here only, so the two cannot drift. The data is the object's resource as
Cloud Storage's JSON API spells it (what a notification carries) plus the pipeline; the
attribute ``ingest-kind: unit`` marks the message. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from service.errors import EnvelopeError
from service.events.event_types import WORK_ATTRIBUTE, WORK_EVENT_TYPE, WORK_KIND
from service.events.fields import parse_json, text
from service.events.storage import object_info
from service.models import EventMeta, Ignored, ObjectInfo, UnitRequested


def encode_work(pipeline: str, info: ObjectInfo) -> tuple[bytes, dict[str, str]]:
    """The message (data, attributes) that asks for one unit of ``pipeline``."""
    resource: dict[str, Any] = {
        "pipeline": pipeline,
        "bucket": info.ref.bucket,
        "name": info.ref.name,
        "generation": str(info.ref.generation),
        "size": str(info.size),
    }
    optional = {
        "contentType": info.content_type,
        "contentEncoding": info.content_encoding,
        "md5Hash": info.md5_base64,
        "crc32c": info.crc32c_base64,
        "updated": info.updated.isoformat() if info.updated else None,
    }
    resource.update({k: v for k, v in optional.items() if v is not None})
    return orjson.dumps(resource), {WORK_ATTRIBUTE: WORK_KIND}


def is_work(attributes: Mapping[str, str]) -> bool:
    return attributes.get(WORK_ATTRIBUTE) == WORK_KIND


def decode_work(data: bytes, meta: EventMeta) -> UnitRequested | Ignored:
    """A work message's unit; a message naming no pipeline is ignored (nothing could run it)."""
    meta = EventMeta(
        event_id=meta.event_id,
        event_type=WORK_EVENT_TYPE,
        source=meta.source,
        time=meta.time,
        shape=meta.shape + "+work",
        delivery_attempt=meta.delivery_attempt,
    )
    resource = parse_json(data, "work message data")
    if not isinstance(resource, Mapping):
        raise EnvelopeError("work message data is not an object")
    pipeline = text(resource.get("pipeline"), "pipeline")
    if pipeline is None or not pipeline.strip():
        return Ignored(meta, "work message names no pipeline")
    return UnitRequested(meta, pipeline.strip(), object_info(resource))
