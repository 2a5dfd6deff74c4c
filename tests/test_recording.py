"""Recorded requests: INGEST_RECORD_DIR writes them, ``ingest replay`` sends them again."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from service.app import create_app
from service.cli import main
from service.errors import EnvelopeError
from service.events import decode
from service.recording import from_json, load_requests, record_request, to_json
from service.settings import Settings, replace_settings
from tests.events import FILES, load

# A few deliveries of different shapes that the service accepts.
ACCEPTED = [
    p
    for p in FILES
    if p.stem
    in {
        "eventarc_storage_unicode_name",
        "structured_storage_finalized",
        "push_gcs_notification_payload_none",
        "push_unwrapped_gcs_notification",
        "push_wrapped_camelcase_scheduler",
        "legacy_storage_finalize",
    }
]


def test_a_body_that_is_not_utf8_round_trips_as_base64() -> None:
    body = b"\xff\xfe\x00binary"
    raw = to_json({"Content-Type": "application/octet-stream"}, body)
    assert "body_base64" in raw
    assert from_json(json.loads(json.dumps(raw))).body == body


def test_recordings_drop_credentials_and_stay_in_their_folder(tmp_path: Path) -> None:
    folder = tmp_path / "recorded"
    path = record_request(
        folder, "../../etc/passwd", {"Authorization": "Bearer secret", "ce-id": "x"}, b"{}"
    )
    assert path.parent == folder
    saved = json.loads(path.read_text())
    assert saved["headers"] == {"ce-id": "x"}


def test_a_body_over_the_cap_is_left_out_and_replay_says_so(tmp_path: Path) -> None:
    folder = tmp_path / "recorded"
    big = b'{"message": {"data": "' + b"A" * 5000 + b'"}}'
    path = record_request(folder, "big", {"ce-id": "big"}, big, max_body_bytes=4096)
    small = record_request(folder, "small", {"ce-id": "small"}, b"{}", max_body_bytes=4096)
    assert path.stat().st_size < 1024  # not the 5 kB body
    saved = json.loads(path.read_text())
    assert saved["body_omitted"] == {"bytes": len(big), "sha256": hashlib.sha256(big).hexdigest()}
    assert "body" not in saved
    assert load_requests(small)[0].body == b"{}"
    with pytest.raises(EnvelopeError, match="recorded without its body"):
        load_requests(path)


async def record_all(settings: Settings) -> list[int]:
    app = create_app(settings)
    statuses = []
    async with app.test_app() as test_app:
        for path in ACCEPTED:
            request, _ = load(path)
            response = await test_app.test_client().post(
                "/", headers={**request.headers, "Authorization": "Bearer t"}, data=request.body
            )
            statuses.append(response.status_code)
    return statuses


def test_recorded_events_replay_to_the_same_typed_events(embedded_settings: Settings) -> None:
    assert len(ACCEPTED) == 6
    folder = embedded_settings.data_dir / "recorded"
    statuses = asyncio.run(record_all(replace_settings(embedded_settings, record_dir=folder)))
    assert statuses == [200] * len(ACCEPTED)
    recorded = load_requests(folder)
    assert len(recorded) == len(ACCEPTED)
    originals = {}
    for path in ACCEPTED:
        request, _ = load(path)
        event = decode(request.headers, request.body)
        originals[event.meta.event_id] = event
    for again in recorded:
        assert "Authorization" not in again.headers
        event = decode(again.headers, again.body)
        assert event == originals[event.meta.event_id]


def test_ingest_replay_sends_a_recorded_folder(embedded_settings: Settings) -> None:
    folder = embedded_settings.data_dir / "recorded"
    asyncio.run(record_all(replace_settings(embedded_settings, record_dir=folder)))
    env = {
        "INGEST_DATA_DIR": str(embedded_settings.data_dir),
        "INGEST_PIPELINES": str(embedded_settings.pipelines_file),
        "INGEST_LOG_FORMAT": "text",
    }
    result = CliRunner().invoke(main, ["replay", "--in-process", str(folder)], env=env)
    assert result.exit_code == 0, result.output
    # Every recorded event was decoded again and answered (no object matches a pipeline here;
    # the sweep request fans out, and publishes nothing).
    assert f"{len(ACCEPTED) - 1} ignored, 1 published" in result.output
