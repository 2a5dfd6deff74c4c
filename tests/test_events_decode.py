"""The decoder against the table of recorded real-shaped deliveries in tests/events/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from service.errors import EnvelopeError, UnsupportedMediaError
from service.events import decode
from service.models import Event, Ignored, ObjectFinalized, SweepRequested
from tests.events import FILES, load

REFUSALS = {EnvelopeError: 400, UnsupportedMediaError: 415}


def flat(event: Event) -> dict[str, Any]:
    """The typed value as the table writes it: kind, the meta fields, then the kind's fields."""
    meta = event.meta
    out: dict[str, Any] = {
        "kind": type(event).__name__,
        "event_id": meta.event_id,
        "event_type": meta.event_type,
        "source": meta.source,
        "time": meta.time.isoformat() if meta.time else None,
        "shape": meta.shape,
        "delivery_attempt": meta.delivery_attempt,
    }
    if isinstance(event, ObjectFinalized):
        info = event.object
        out.update(
            bucket=info.ref.bucket,
            name=info.ref.name,
            generation=info.ref.generation,
            size=info.size,
            content_type=info.content_type,
            content_encoding=info.content_encoding,
            md5_base64=info.md5_base64,
            crc32c_base64=info.crc32c_base64,
            updated=info.updated.isoformat() if info.updated else None,
            metageneration=event.metageneration,
        )
    elif isinstance(event, SweepRequested):
        out.update(pipeline=event.pipeline, date=event.date, prefix=event.prefix)
    else:
        assert isinstance(event, Ignored)
        out.update(reason=event.reason)
    return out


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_recorded_delivery_decodes_to_its_expected_value(path: Path) -> None:
    request, expect = load(path)
    if "status" in expect:
        with pytest.raises((EnvelopeError, UnsupportedMediaError)) as refused:
            decode(request.headers, request.body)
        assert REFUSALS[type(refused.value)] == expect["status"]
    else:
        assert flat(decode(request.headers, request.body)) == expect["event"]


def test_the_table_covers_every_shape_kind_and_refusal() -> None:
    """The table is the issue's list: a file per delivery shape, kind and refusal."""
    shapes, kinds, statuses, reasons = set(), set(), set(), set()
    for path in FILES:
        _, expect = load(path)
        if "status" in expect:
            statuses.add(expect["status"])
            continue
        event = expect["event"]
        shapes.add(event["shape"])
        kinds.add(event["kind"])
        reasons.add(event.get("reason"))
    assert shapes >= {
        "cloudevent-binary",
        "cloudevent-binary+gcs-notification",
        "cloudevent-structured",
        "pubsub-push",
        "pubsub-push+gcs-notification",
        "pubsub-push-unwrapped",
        "pubsub-push-unwrapped+gcs-notification",
        "legacy-background",
    }
    assert kinds == {"ObjectFinalized", "SweepRequested", "Ignored"}
    assert statuses == {400, 415}
    assert reasons >= {"object deleted", "metadata updated", "unknown event type"}


def test_header_names_are_case_insensitive() -> None:
    request, expect = load(FILES[0].parent / "eventarc_storage_finalized.json")
    shouted = {k.upper(): v for k, v in request.headers.items()}
    assert flat(decode(shouted, request.body)) == expect["event"]


def test_unwrapped_attribute_headers_carry_utf8_names() -> None:
    """HTTP stacks hand header bytes over as latin-1; the object name is the sender's UTF-8."""
    request, _ = load(FILES[0].parent / "push_gcs_notification_payload_none.json")
    name = "zone/über 2026.csv"
    headers = {
        "x-goog-pubsub-message-id": "9",
        "payloadformat": "NONE",
        "eventtype": "OBJECT_FINALIZE",
        "bucketid": "landing-prod",
        "objectid": name.encode("utf-8").decode("latin-1"),
        "objectgeneration": "12",
    }
    event = decode(headers, b"")
    assert isinstance(event, ObjectFinalized)
    assert (event.object.ref.name, event.object.ref.generation) == (name, 12)
    assert request.headers  # the table file exists and loads


def test_body_name_wins_over_subject() -> None:
    """The data's name is exact; the subject is only a fallback (it may be shortened)."""
    request, _ = load(FILES[0].parent / "eventarc_storage_finalized.json")
    headers = {**request.headers, "ce-subject": "objects/something-else.csv"}
    event = decode(headers, request.body)
    assert isinstance(event, ObjectFinalized)
    assert event.object.ref.name == "orders/2026-11-20.csv"


def subject_event(subject: str) -> tuple[dict[str, str], bytes]:
    """A binary-mode storage CloudEvent naming its object only in ``ce-subject``."""
    request, _ = load(FILES[0].parent / "eventarc_storage_name_from_subject.json")
    return {**request.headers, "ce-subject": subject}, request.body


# Names Cloud Storage refuses (https://cloud.google.com/storage/docs/naming-objects), as
# percent-encoded subjects.
INVALID_SUBJECTS = (
    "objects/.well-known/acme-challenge/token",
    "objects/a%0Db.csv",
    "objects/a%0Ab.csv",
    "objects/.",
    "objects/..",
    "objects/" + "x" * 1025,
)
# Hostile to a file system, valid on Cloud Storage: decoded as they are.
VALID_SUBJECTS = {
    "objects/orders/a%00b.csv": "orders/a\x00b.csv",
    "objects/orders/../x.csv": "orders/../x.csv",
    "objects/orders//x.csv": "orders//x.csv",
    "objects/orders/" + "x" * 300: "orders/" + "x" * 300,
    "objects/.well-known/other": ".well-known/other",
}


@pytest.mark.parametrize("subject", INVALID_SUBJECTS)
def test_a_name_cloud_storage_refuses_is_refused(subject: str) -> None:
    with pytest.raises(EnvelopeError, match="object name"):
        decode(*subject_event(subject))


def test_a_subject_that_is_not_percent_encoded_utf8_is_refused() -> None:
    with pytest.raises(EnvelopeError, match="attribute is not percent-encoded UTF-8"):
        decode(*subject_event("objects/caf%C3.csv"))


@pytest.mark.parametrize("subject", sorted(VALID_SUBJECTS))
def test_a_valid_name_is_decoded_unchanged(subject: str) -> None:
    event = decode(*subject_event(subject))
    assert isinstance(event, ObjectFinalized)
    assert event.object.ref.name == VALID_SUBJECTS[subject]
