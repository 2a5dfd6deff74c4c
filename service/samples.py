"""Build ready-to-replay requests in the exact shapes Google's services send."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from service.recording import RecordedRequest

STORAGE_FINALIZED = "google.cloud.storage.object.v1.finalized"
PUBSUB_PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"


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
        resource["md5Hash"] = base64.b64encode(hashlib.md5(data).digest()).decode()
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
