"""Build ready-to-replay requests in the exact shapes Google's services send."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from service.events.event_types import NOTIFICATION_FINALIZE, PUBSUB_PUBLISHED, STORAGE_FINALIZED
from service.models import ObjectInfo
from service.pipeline.checksum import crc32c_base64, md5_base64
from service.recording import RecordedRequest


def object_resource(
    bucket: str,
    name: str,
    generation: int,
    data: bytes | None = None,
    *,
    content_type: str = "text/csv",
    content_encoding: str | None = None,
    time: datetime | None = None,
) -> dict[str, Any]:
    """A StorageObjectData / JSON_API_V1 object resource; int64 fields as strings, as GCS does."""
    stamp = (time or datetime.now(UTC)).isoformat().replace("+00:00", "Z")
    resource: dict[str, Any] = {
        "kind": "storage#object",
        "id": f"{bucket}/{name}/{generation}",
        "bucket": bucket,
        "name": name,
        "generation": str(generation),
        "metageneration": "1",
        "contentType": content_type,
        "timeCreated": stamp,
        "updated": stamp,
        "storageClass": "STANDARD",
    }
    if content_encoding:
        resource["contentEncoding"] = content_encoding
    if data is not None:
        resource["size"] = str(len(data))
        resource["md5Hash"] = md5_base64(data)
        resource["crc32c"] = crc32c_base64(data)
    return resource


def resource_from_info(info: ObjectInfo) -> dict[str, Any]:
    """The object resource for what a store reported about one generation (size, md5...)."""
    ref = info.ref
    if ref.generation is None:
        raise ValueError(f"{ref.uri}: a generation is needed to describe an object")
    resource = object_resource(
        ref.bucket,
        ref.name,
        ref.generation,
        content_type=info.content_type or "application/octet-stream",
        content_encoding=info.content_encoding,
        time=info.updated,
    )
    resource["size"] = str(info.size)
    if info.md5_base64:
        resource["md5Hash"] = info.md5_base64
    if info.crc32c_base64:
        resource["crc32c"] = info.crc32c_base64
    return resource


def storage_cloudevent(resource: dict[str, Any], event_id: str | None = None) -> RecordedRequest:
    """Eventarc's binary-mode CloudEvent for an object finalize."""
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "ce-specversion": "1.0",
        "ce-type": STORAGE_FINALIZED,
        "ce-source": f"//storage.googleapis.com/projects/_/buckets/{resource['bucket']}",
        "ce-subject": f"objects/{resource['name']}",
        "ce-id": event_id or str(uuid.uuid4().int)[:16],
        "ce-time": resource.get("updated", datetime.now(UTC).isoformat()),
    }
    return RecordedRequest(headers, json.dumps(resource).encode())


def scheduler_push(
    pipeline: str, date: str | None = None, *, subscription: str = "projects/p/subscriptions/s"
) -> RecordedRequest:
    """A Cloud Scheduler message as a wrapped Pub/Sub push delivers it."""
    payload: dict[str, str] = {"pipeline": pipeline}
    if date:
        payload["date"] = date
    message_id = str(uuid.uuid4().int)[:16]
    body = {
        "message": {
            "data": base64.b64encode(json.dumps(payload).encode()).decode(),
            "attributes": {},
            "messageId": message_id,
            "publishTime": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        },
        "subscription": subscription,
    }
    return RecordedRequest({"Content-Type": "application/json"}, json.dumps(body).encode())


def storage_structured_cloudevent(
    resource: dict[str, Any], event_id: str | None = None
) -> RecordedRequest:
    """The same finalize as one structured-mode CloudEvent (what replay files often hold)."""
    binary = storage_cloudevent(resource, event_id)
    event: dict[str, Any] = {
        k.removeprefix("ce-"): v for k, v in binary.headers.items() if k.startswith("ce-")
    }
    event["datacontenttype"] = "application/json"
    event["data"] = resource
    return RecordedRequest(
        {"Content-Type": "application/cloudevents+json"}, json.dumps(event).encode()
    )


def storage_notification_push(
    resource: dict[str, Any],
    event_id: str | None = None,
    *,
    subscription: str = "projects/p/subscriptions/s",
) -> RecordedRequest:
    """A GCS Pub/Sub notification (JSON_API_V1) as a wrapped push subscription delivers it."""
    attributes = {
        "notificationConfig": f"projects/_/buckets/{resource['bucket']}/notificationConfigs/1",
        "eventType": NOTIFICATION_FINALIZE,
        "payloadFormat": "JSON_API_V1",
        "bucketId": resource["bucket"],
        "objectId": resource["name"],
        "objectGeneration": resource["generation"],
        "eventTime": resource.get("updated", _now()),
    }
    body = {
        "message": {
            "data": base64.b64encode(json.dumps(resource).encode()).decode(),
            "attributes": attributes,
            "messageId": event_id or str(uuid.uuid4().int)[:16],
            "publishTime": _now(),
        },
        "subscription": subscription,
    }
    return RecordedRequest({"Content-Type": "application/json"}, json.dumps(body).encode())


def scheduler_cloudevent(
    pipeline: str, date: str | None = None, *, topic: str = "projects/p/topics/ingest-sweeps"
) -> RecordedRequest:
    """A Cloud Scheduler message as Eventarc delivers it: a binary-mode messagePublished."""
    push = json.loads(scheduler_push(pipeline, date).body)
    message_id = push["message"]["messageId"]
    headers = {
        "Content-Type": "application/json",
        "ce-specversion": "1.0",
        "ce-type": PUBSUB_PUBLISHED,
        "ce-source": f"//pubsub.googleapis.com/{topic}",
        "ce-id": message_id,
        "ce-time": push["message"]["publishTime"],
    }
    return RecordedRequest(headers, json.dumps(push).encode())


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")
