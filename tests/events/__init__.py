"""Recorded real-shaped deliveries, one JSON file each: {"doc", "headers", "body", "expect"}.

Each file is in the recorded-request format (service/recording.py) so ``ingest replay`` can
send it too. ``expect`` is either {"event": {...}}, the typed value the decoder must return
(flattened: see tests/test_events_decode.py), or {"status": N}, the HTTP refusal.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from service.recording import RecordedRequest, from_json

HERE = Path(__file__).resolve().parent
FILES = sorted(HERE.glob("*.json"))


def load(path: Path) -> tuple[RecordedRequest, dict[str, Any]]:
    raw = json.loads(path.read_text(encoding="utf-8"))
    expect: dict[str, Any] = raw["expect"]
    return from_json(raw, str(path)), expect
