"""Ledger records to documents and back: native (Firestore, memory) and JSON text (SQLite)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from service.codec import as_datetime, from_doc, json_default, to_doc
from service.errors import TransientError
from service.models import LedgerRecord, UnitResult, UnitState

NOW = datetime(2026, 11, 21, 12, 30, 45, 123456, tzinfo=UTC)
RECORD = LedgerRecord(
    key="abc",
    unit="orders:gs://landing/orders/a.csv#7",
    pipeline="orders",
    state=UnitState.COMPLETED,
    owner="host:1:xyz",
    lease_expires_at=NOW,
    fingerprint="md5:AAA",
    attempt=2,
    created_at=NOW - timedelta(minutes=5),
    updated_at=NOW,
    expire_at=NOW + timedelta(days=30),
    event_id="e1",
    object_uri="gs://landing/orders/a.csv#7",
    result=UnitResult(rows_read=3, rows_loaded=2, rows_quarantined=1, durations={"load": 0.5}),
)


def test_native_document_round_trip() -> None:
    doc = to_doc(RECORD)
    assert doc["state"] == "COMPLETED"
    assert isinstance(doc["expire_at"], datetime)  # a native timestamp: what TTL needs
    assert doc["result"]["durations"] == {"load": 0.5}
    assert from_doc(doc) == RECORD


def test_json_text_round_trip() -> None:
    text = json.dumps(to_doc(RECORD), default=json_default)
    assert from_doc(json.loads(text)) == RECORD


def test_fields_from_a_newer_writer_are_ignored() -> None:
    doc = to_doc(RECORD)
    doc["priority"] = 3
    doc["result"]["bytes_read"] = 1024
    assert from_doc(doc) == RECORD


def test_unreadable_document_is_transient_not_a_guess() -> None:
    doc = to_doc(RECORD)
    del doc["lease_expires_at"]
    with pytest.raises(TransientError, match="abc"):
        from_doc(doc)
    with pytest.raises(TransientError):
        from_doc({**to_doc(RECORD), "state": "DONE-ISH"})
    with pytest.raises(TransientError):
        from_doc({**to_doc(RECORD), "updated_at": 12345})


def test_instants_are_always_aware() -> None:
    assert as_datetime("2026-11-21T12:00:00") == datetime(2026, 11, 21, 12, tzinfo=UTC)
    plus_two = datetime(2026, 11, 21, 14, tzinfo=timezone(timedelta(hours=2)))
    assert as_datetime(plus_two.isoformat()) == datetime(2026, 11, 21, 12, tzinfo=UTC)
    assert as_datetime(datetime(2026, 11, 21, 12)).tzinfo is UTC


def test_stream_notes_survive_json_and_firestore_wire() -> None:
    from dataclasses import replace

    from service.adapters.gcp.firestore_wire import decode_fields, encode_value

    noted = replace(RECORD, write_phase="committing", write_streams=("p/streams/1", "p/s/2"))
    text = json.loads(json.dumps(to_doc(noted), default=json_default))
    assert from_doc(text) == noted  # SQLite keeps JSON text: the tuple comes back a tuple
    wire = encode_value(to_doc(noted)).map_value.fields
    assert from_doc(decode_fields(wire)) == noted
    old = {k: v for k, v in to_doc(RECORD).items() if not k.startswith("write_")}
    assert from_doc(old) == RECORD  # records written before the fields existed still read
