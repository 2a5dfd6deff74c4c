"""Work messages: what a sweep publishes decodes, by every push shape, to the unit it names."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from service.errors import EnvelopeError
from service.events import decode
from service.events.work import encode_work
from service.models import Ignored, ObjectInfo, ObjectRef, UnitRequested
from service.pipeline.pipelines_file import load_pipelines
from service.plans import Verdict, plan
from service.work_queue import push_envelope
from tests.conftest import EXAMPLES

INFO = ObjectInfo(
    ObjectRef("landing", "orders/2026-11-20 ü.csv", 1763700000000001),
    1234,
    "text/csv",
    "gzip",
    "bWQ1",
    "Y3JjMzJj",
    datetime(2026, 11, 20, 6, tzinfo=UTC),
)


def test_a_wrapped_push_of_a_work_message_is_the_unit_it_names() -> None:
    data, attributes = encode_work("orders", INFO)
    event = decode({"content-type": "application/json"}, push_envelope(data, attributes))
    assert isinstance(event, UnitRequested)
    assert (event.pipeline, event.object) == ("orders", INFO)
    assert event.meta.event_type == "ingest.unit.requested"
    assert event.meta.shape == "pubsub-push+work"


def test_an_unwrapped_push_carries_the_marker_as_a_header() -> None:
    data, attributes = encode_work("orders", INFO)
    headers = {"x-goog-pubsub-message-id": "42", "content-type": "application/json"}
    headers.update(attributes)
    event = decode(headers, data)
    assert isinstance(event, UnitRequested) and event.object == INFO


def test_a_work_message_naming_no_pipeline_is_ignored_and_a_broken_one_refused() -> None:
    data, attributes = encode_work(" ", INFO)
    assert isinstance(decode({}, push_envelope(data, attributes)), Ignored)
    with pytest.raises(EnvelopeError):
        decode({}, push_envelope(b"[1]", attributes))
    no_generation = b'{"pipeline": "orders", "bucket": "landing", "name": "a.csv"}'
    with pytest.raises(EnvelopeError):
        decode({}, push_envelope(no_generation, attributes))


def test_without_the_marker_the_same_data_is_a_sweep_request() -> None:
    data, _ = encode_work("orders", INFO)
    body = push_envelope(data, {})
    assert not isinstance(decode({}, body), UnitRequested)
    assert base64.b64decode(base64.b64encode(data)) == data


def test_the_plan_of_a_work_message_is_its_one_unit() -> None:
    pipelines = load_pipelines(EXAMPLES / "pipelines.toml")
    data, attributes = encode_work("orders", INFO)
    event = decode({}, push_envelope(data, attributes))
    found = plan(pipelines, event)
    assert (found.verdict, [u.pipeline for u in found.units]) == (Verdict.RUN, ["orders"])
    other = decode({}, push_envelope(*encode_work("customers", INFO)))
    assert plan(pipelines, other).verdict is Verdict.IGNORE
