"""The names Google's producers give events, and the attributes of a storage notification.

Written once: the decoder reads them; the samples and the deployment plan write them.
"""

from __future__ import annotations

# Eventarc's CloudEvent type for a new object generation (a storage trigger's filter).
STORAGE_FINALIZED = "google.cloud.storage.object.v1.finalized"
# Eventarc's CloudEvent type for a published Pub/Sub message (the scheduler trigger's filter).
PUBSUB_PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"
# A Cloud Storage Pub/Sub notification's eventType for a new object generation.
NOTIFICATION_FINALIZE = "OBJECT_FINALIZE"
# The start of every Eventarc storage event type.
STORAGE_PREFIX = "google.cloud.storage.object."
# The start of every legacy background-function storage event type.
LEGACY_STORAGE_PREFIX = "google.storage.object."
# Storage event types that mean "a new object generation exists"; each name its producer uses.
FINALIZE_TYPES = frozenset(
    {
        STORAGE_FINALIZED,  # Eventarc CloudEvent
        NOTIFICATION_FINALIZE,  # Pub/Sub notification attribute eventType
        "google.storage.object.finalize",  # legacy background function event
    }
)
# Storage event types we understand and deliberately do not ingest, with the logged reason.
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
# Legacy event types of a Pub/Sub publish, the old provider name and the newer short one.
LEGACY_PUBSUB_TYPES = frozenset(
    {"providers/cloud.pubsub/eventTypes/topic.publish", "google.pubsub.topic.publish"}
)
# CloudEvent types of this service's own outcome events: a unit completed, failed, or its file
# was rejected whole.
OUTCOME_COMPLETED = "gcp_ingest.unit.v1.completed"
OUTCOME_FAILED = "gcp_ingest.unit.v1.failed"
OUTCOME_REJECTED = "gcp_ingest.unit.v1.rejected"
# The attributes of a Cloud Storage Pub/Sub notification, as Cloud Storage spells them.
NOTIFICATION_ATTRIBUTES = (
    "payloadFormat",
    "eventType",
    "bucketId",
    "objectId",
    "objectGeneration",
    "eventTime",
    "notificationConfig",
    "overwroteGeneration",
    "overwrittenByGeneration",
)
# Attributes that make a message a notification (with eventType, any one of these).
NOTIFICATION_MARKERS = ("payloadFormat", "bucketId", "objectId")
# The notification attributes by the lower-case name an HTTP stack may turn them into.
GCS_ATTRIBUTES = {name.lower(): name for name in NOTIFICATION_ATTRIBUTES}
# The attribute (and its value) that marks a sweep's work message: one unit to run.
WORK_ATTRIBUTE = "ingest-kind"
WORK_KIND = "unit"
# The event type a work message is logged with.
WORK_EVENT_TYPE = "ingest.unit.requested"
