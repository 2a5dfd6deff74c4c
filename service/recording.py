"""Recorded requests: the replayable file format shared by INGEST_RECORD_DIR, tests and replay.

A recording is JSON: {"headers": {...}, "body": "<text>"} or {"headers", "body_base64"} for
bodies that are not UTF-8. Structured CloudEvents and push envelopes saved as plain JSON files
are accepted by replay too (they are turned into requests with the right content type).
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.errors import EnvelopeError

SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class RecordedRequest:
    headers: dict[str, str]
    body: bytes
    source: str = ""


def to_json(headers: dict[str, str], body: bytes) -> dict[str, Any]:
    try:
        return {"headers": headers, "body": body.decode("utf-8")}
    except UnicodeDecodeError:
        return {"headers": headers, "body_base64": base64.b64encode(body).decode()}


def record_request(directory: Path, event_id: str, headers: dict[str, str], body: bytes) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    kept = {k: v for k, v in headers.items() if k.lower() != "authorization"}
    name = SAFE_NAME.sub("_", event_id)[:100] or "event"
    path = directory / f"{name}.json"
    path.write_text(json.dumps(to_json(kept, body), indent=2, ensure_ascii=False))
    return path


def from_json(raw: Any, source: str = "") -> RecordedRequest:
    """A recording, a structured CloudEvent, or a push envelope, as a request to replay."""
    if not isinstance(raw, dict):
        raise EnvelopeError(f"{source}: not a JSON object")
    if "headers" in raw and ("body" in raw or "body_base64" in raw):
        headers = {str(k): str(v) for k, v in raw["headers"].items()}
        if "body_base64" in raw:
            body = base64.b64decode(raw["body_base64"])
        elif isinstance(raw["body"], str):
            body = raw["body"].encode("utf-8")
        else:
            body = json.dumps(raw["body"]).encode("utf-8")
        return RecordedRequest(headers, body, source)
    if "specversion" in raw:
        content_type = "application/cloudevents+json"
        return RecordedRequest({"Content-Type": content_type}, json.dumps(raw).encode(), source)
    return RecordedRequest({"Content-Type": "application/json"}, json.dumps(raw).encode(), source)


def load_requests(path: Path) -> list[RecordedRequest]:
    """Every request in a file (.json, or .jsonl with one per line) or a folder of them."""
    if path.is_dir():
        found: list[RecordedRequest] = []
        for child in sorted(path.rglob("*")):
            if child.suffix in (".json", ".jsonl") and child.is_file():
                found.extend(load_requests(child))
        return found
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [
            from_json(json.loads(line), f"{path}:{n}")
            for n, line in enumerate(text.splitlines(), 1)
            if line.strip()
        ]
    return [from_json(json.loads(text), str(path))]
