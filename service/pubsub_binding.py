"""CloudEvents in the Pub/Sub protocol binding, binary content mode, both ways.

Binary mode puts each CloudEvents attribute in a Pub/Sub message attribute named ``ce-<name>``
(its canonical string), ``datacontenttype`` in ``Content-Type``, and the data, as it is, in the
message body (github.com/cloudevents/spec, pubsub-protocol-binding.md). Eventarc moves events
through Pub/Sub this way, so a dead-lettered Eventarc delivery is such a message; the outcome
events are published this way. Pure: events in, (data, attributes) out, and back into the
binary-mode HTTP request the service's own strict reader (``service.events``) decodes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import quote

from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.formats.json import JSONFormat

CE_PREFIX = "ce-"
# Pub/Sub refuses a message with an attribute value over this (cloud.google.com/pubsub/quotas).
ATTRIBUTE_VALUE_MAX_BYTES = 1024
# The message attribute the binding maps to ``datacontenttype`` (some producers spell it as a
# ce- attribute instead: read both).
CONTENT_TYPE = "Content-Type"
# Printable ASCII but space, '"' and '%': what the HTTP binding leaves as it is in a header.
HEADER_SAFE = "".join(c for c in map(chr, range(0x21, 0x7F)) if c not in ' "%')


def to_message(event: BaseCloudEvent) -> tuple[bytes, dict[str, str]]:
    """The message data and attributes of ``event`` in binary mode."""
    attributes: dict[str, str] = {}
    for name, value in event.get_attributes().items():
        if value is None:
            continue
        if name == "datacontenttype":
            attributes[CONTENT_TYPE] = str(value)
        else:
            attributes[CE_PREFIX + name] = _canonical(value)
    content_type = event.get_attributes().get("datacontenttype")
    return JSONFormat().write_data(event.get_data(), content_type), attributes


def _canonical(value: object) -> str:
    """A CloudEvents attribute's canonical string (a Timestamp as RFC 3339 in UTC, with Z)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return str(value)


def is_binary_cloudevent(attributes: Mapping[str, str]) -> bool:
    """Whether a message carries a CloudEvent in binary mode (its specversion attribute)."""
    return any(name.lower() == f"{CE_PREFIX}specversion" for name in attributes)


def to_http(data: bytes, attributes: Mapping[str, str]) -> tuple[dict[str, str], bytes]:
    """The binary-mode HTTP request (headers, body) of a binary-mode message: ``ce-`` headers
    percent-encoded as the HTTP binding wants, Content-Type from the data content type."""
    headers: dict[str, str] = {}
    content_type = None
    for name, value in attributes.items():
        lowered = name.lower()
        if lowered == CONTENT_TYPE.lower() or lowered == f"{CE_PREFIX}datacontenttype":
            content_type = value
        elif lowered.startswith(CE_PREFIX):
            headers[lowered] = quote(value, safe=HEADER_SAFE)
    headers["content-type"] = content_type or "application/json"
    return headers, data
