"""CloudEvents 1.0 over HTTP, binary and structured modes, read strictly.

The SDK's readers were not used here because, for this edge, they do too much and too little:
they invent an id and a time when the sender gave none (an event we could not log or find
again), they refuse the whole event for one extension header name they dislike, and a
structured body that is a JSON array escapes as AttributeError. This reader takes the four
required attributes, the two we use, and the data, and refuses anything else with EnvelopeError.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote

from service.errors import EnvelopeError, UnsupportedMediaError
from service.events.fields import b64decode, parse_json, text, timestamp

SPECVERSION = "1.0"
# Media types whose data is JSON (application/json, text/json, application/x+json...).
JSON_MEDIA = re.compile(r"(application|text)/([a-z0-9.\-]+\+)?json")


@dataclass(frozen=True)
class CloudEvent:
    id: str
    type: str
    source: str
    subject: str | None
    time: datetime | None
    data: Any  # the JSON data, or None when the event carried none


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_json_media(media: str) -> bool:
    """No media type at all counts as JSON (the data is read as JSON either way)."""
    return media in ("", "application/json") or JSON_MEDIA.fullmatch(media) is not None


def from_binary(headers: Mapping[str, str], body: bytes) -> CloudEvent:
    """Attributes from ``ce-*`` headers (lower-case names), data from the body."""
    attrs = {k[3:]: _attribute(v) for k, v in headers.items() if k[:3] == "ce-"}
    if not is_json_media(media_type(headers.get("content-type"))):
        raise UnsupportedMediaError("CloudEvent data must be JSON")
    data = parse_json(body, "CloudEvent data") if body.strip() else None
    return _event(attrs, data)


def _attribute(value: str) -> str:
    """The HTTP binding percent-encodes attribute values that are not printable ASCII; bytes
    that are not UTF-8 are refused rather than read as U+FFFD (another object's name)."""
    if "%" not in value:
        return value
    try:
        return unquote(value, errors="strict")
    except UnicodeDecodeError as exc:
        raise EnvelopeError("a CloudEvent attribute is not percent-encoded UTF-8") from exc


def from_structured(body: bytes) -> CloudEvent:
    """The whole event as one JSON object (``application/cloudevents+json``)."""
    raw = parse_json(body, "structured CloudEvent")
    if not isinstance(raw, Mapping):
        raise EnvelopeError("structured CloudEvent is not a JSON object")
    if not is_json_media(media_type(text(raw.get("datacontenttype"), "datacontenttype"))):
        raise UnsupportedMediaError("CloudEvent data must be JSON")
    if "data_base64" in raw:
        encoded = b64decode(raw["data_base64"], "data_base64")
        data = parse_json(encoded, "CloudEvent data") if encoded.strip() else None
    else:
        data = raw.get("data")
    return _event(raw, data)


def _event(attrs: Mapping[str, Any], data: Any) -> CloudEvent:
    if attrs.get("specversion") != SPECVERSION:
        raise EnvelopeError("CloudEvent specversion is missing or not 1.0")
    return CloudEvent(
        id=text(attrs.get("id"), "CloudEvent id", required=True) or "",
        type=text(attrs.get("type"), "CloudEvent type", required=True) or "",
        source=text(attrs.get("source"), "CloudEvent source", required=True) or "",
        subject=text(attrs.get("subject"), "CloudEvent subject"),
        time=timestamp(attrs.get("time")),
        data=data,
    )
