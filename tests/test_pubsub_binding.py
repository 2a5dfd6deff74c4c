"""The Pub/Sub protocol binding of CloudEvents, binary mode: written, and read back over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime

from cloudevents.core.v1.event import CloudEvent

from service.events.cloudevent import from_binary
from service.pubsub_binding import is_binary_cloudevent, to_http, to_message

EVENT = CloudEvent(
    {
        "id": "u-1",
        "source": "//gcp-ingest/pipelines/orders",
        "type": "gcp_ingest.unit.v1.completed",
        "subject": 'orders:gs://landing/a "b" 100%.csv#7',
        "time": datetime(2026, 11, 21, 12, 0, 0, 5000, tzinfo=UTC),
        "datacontenttype": "application/json",
    },
    {"rows_loaded": 3},
)


def test_attributes_are_ce_attributes_and_the_data_is_the_body() -> None:
    data, attributes = to_message(EVENT)
    assert data == b'{"rows_loaded": 3}'
    assert attributes == {
        "ce-specversion": "1.0",
        "ce-id": "u-1",
        "ce-source": "//gcp-ingest/pipelines/orders",
        "ce-type": "gcp_ingest.unit.v1.completed",
        "ce-subject": 'orders:gs://landing/a "b" 100%.csv#7',  # canonical: no escaping
        "ce-time": "2026-11-21T12:00:00.005000Z",
        "Content-Type": "application/json",
    }
    assert is_binary_cloudevent(attributes)
    assert not is_binary_cloudevent({"state": "COMPLETED", "eventType": "OBJECT_FINALIZE"})


def test_a_message_read_back_over_http_is_the_same_event() -> None:
    data, attributes = to_message(EVENT)
    headers, body = to_http(data, {**attributes, "state": "COMPLETED"})
    assert "state" not in headers  # only the binding's attributes become headers
    read = from_binary(headers, body)  # the service's own strict reader
    assert (read.id, read.type, read.source, read.subject) == (
        "u-1",
        "gcp_ingest.unit.v1.completed",
        "//gcp-ingest/pipelines/orders",
        'orders:gs://landing/a "b" 100%.csv#7',
    )
    assert read.time == EVENT.get_time()
    assert read.data == {"rows_loaded": 3}


def test_the_data_content_type_may_come_as_a_ce_attribute_or_not_at_all() -> None:
    spelled = {"ce-specversion": "1.0", "ce-datacontenttype": "text/json"}
    assert to_http(b"{}", spelled)[0] == {"ce-specversion": "1.0", "content-type": "text/json"}
    assert to_http(b"{}", {"CE-ID": "x"})[0] == {"ce-id": "x", "content-type": "application/json"}
