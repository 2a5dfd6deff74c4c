"""The CloudEvent reader, checked against what the CloudEvents SDK itself writes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from cloudevents.core.bindings.http import to_binary_event, to_structured_event
from cloudevents.core.v1.event import CloudEvent as SdkEvent

from service.errors import EnvelopeError, UnsupportedMediaError
from service.events.cloudevent import from_binary, from_structured

ATTRIBUTES = {
    "specversion": "1.0",
    "id": "9429367541231823",
    "type": "google.cloud.storage.object.v1.finalized",
    "source": "//storage.googleapis.com/projects/_/buckets/landing",
    "subject": 'objects/zone ü/100% "done".csv',
    "time": datetime(2026, 11, 21, 22, 0, 0, 123000, UTC),
    "datacontenttype": "application/json",
}
DATA = {"bucket": "landing", "name": 'zone ü/100% "done".csv', "generation": "7"}


def sdk_event(**changes: Any) -> SdkEvent:
    return SdkEvent(attributes={**ATTRIBUTES, **changes}, data=dict(DATA))


def test_reads_what_the_sdk_writes_in_binary_mode() -> None:
    message = to_binary_event(sdk_event())
    headers = {k.lower(): v for k, v in message.headers.items()}
    assert "%" in headers["ce-subject"]  # the SDK percent-encodes; the reader must decode
    event = from_binary(headers, message.body)
    assert (event.id, event.type, event.source) == (
        ATTRIBUTES["id"],
        ATTRIBUTES["type"],
        ATTRIBUTES["source"],
    )
    assert event.subject == ATTRIBUTES["subject"]
    assert event.time == ATTRIBUTES["time"]
    assert event.data == DATA


def test_reads_what_the_sdk_writes_in_structured_mode() -> None:
    message = to_structured_event(sdk_event())
    event = from_structured(message.body)
    assert event.subject == ATTRIBUTES["subject"]
    assert event.time == ATTRIBUTES["time"]
    assert event.data == DATA


def test_structured_binary_data_goes_through_data_base64() -> None:
    message = to_structured_event(SdkEvent(attributes=dict(ATTRIBUTES), data=b'{"a": 1}'))
    assert b"data_base64" in message.body
    assert from_structured(message.body).data == {"a": 1}


def binary_headers() -> dict[str, str]:
    return {
        "ce-specversion": "1.0",
        "ce-id": "1",
        "ce-type": "t",
        "ce-source": "s",
        "content-type": "application/json",
    }


@pytest.mark.parametrize("missing", ["id", "type", "source", "specversion"])
def test_a_missing_required_attribute_is_refused_not_invented(missing: str) -> None:
    headers = {k: v for k, v in binary_headers().items() if k != f"ce-{missing}"}
    with pytest.raises(EnvelopeError, match="CloudEvent"):
        from_binary(headers, b"{}")


def test_extension_headers_of_any_name_are_tolerated() -> None:
    headers = {**binary_headers(), "ce-bucket": "landing", "ce-x_proxy_added": "1"}
    assert from_binary(headers, b"{}").id == "1"


def test_an_unreadable_time_is_no_reason_to_refuse() -> None:
    assert from_binary({**binary_headers(), "ce-time": "not a time"}, b"").time is None


def test_empty_body_means_no_data() -> None:
    assert from_binary(binary_headers(), b"  ").data is None


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "text/json", ""]
)
def test_json_media_types_are_read(content_type: str) -> None:
    headers = {**binary_headers(), "content-type": content_type}
    assert from_binary(headers, b'{"a": 1}').data == {"a": 1}


@pytest.mark.parametrize("content_type", ["application/protobuf", "text/csv", "image/png"])
def test_other_media_types_are_unsupported(content_type: str) -> None:
    with pytest.raises(UnsupportedMediaError):
        from_binary({**binary_headers(), "content-type": content_type}, b"\x08\x01")


@pytest.mark.parametrize(
    "body",
    [b"[]", b'"event"', b"{", b'{"specversion": "1.0", "id": 5, "type": "t", "source": "s"}'],
)
def test_structured_bodies_that_are_not_events_are_refused(body: bytes) -> None:
    with pytest.raises(EnvelopeError):
        from_structured(body)


def test_structured_non_json_data_content_type_is_unsupported() -> None:
    body = b'{"specversion": "1.0", "id": "1", "type": "t", "source": "s", '
    body += b'"datacontenttype": "application/avro", "data_base64": "AAE="}'
    with pytest.raises(UnsupportedMediaError):
        from_structured(body)
