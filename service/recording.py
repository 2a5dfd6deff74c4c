"""Recorded requests: the replayable file format shared by INGEST_RECORD_DIR, tests and replay.

A recording is JSON: {"headers": {...}, "body": "<text>"} or {"headers", "body_base64"} for
bodies that are not UTF-8. A body over the recording cap is left out and its size and SHA-256
kept instead ({"headers", "body_omitted"}): such a recording names the event but cannot be
replayed (replay says so). Structured CloudEvents and push envelopes saved as plain JSON files
are accepted by replay too (they are turned into requests with the right content type).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.answers import FORCE_HEADER
from service.errors import EnvelopeError, UnsupportedMediaError
from service.events import decode
from service.models import Event

SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
# Headers never written to a recording: credentials, and an operator's one-off forced re-run.
UNRECORDED_HEADERS = frozenset({"authorization", FORCE_HEADER.lower()})
# File suffixes that replay reads from a folder.
EVENT_SUFFIXES = (".json", ".jsonl", ".ndjson")


@dataclass(frozen=True)
class RecordedRequest:
    headers: dict[str, str]
    body: bytes
    source: str = ""


def event_of(request: RecordedRequest) -> Event | str:
    """The event a request carries, or why it is not one (what the service would answer 400)."""
    try:
        return decode(request.headers, request.body)
    except (EnvelopeError, UnsupportedMediaError) as exc:
        return str(exc)


def to_json(headers: dict[str, str], body: bytes) -> dict[str, Any]:
    try:
        return {"headers": headers, "body": body.decode("utf-8")}
    except UnicodeDecodeError:
        return {"headers": headers, "body_base64": base64.b64encode(body).decode()}


def record_request(
    directory: Path,
    event_id: str,
    headers: dict[str, str],
    body: bytes,
    max_body_bytes: int | None = None,
) -> Path:
    """Write one request to ``directory``; a body over ``max_body_bytes`` is left out."""
    directory.mkdir(parents=True, exist_ok=True)
    kept = {k: v for k, v in headers.items() if k.lower() not in UNRECORDED_HEADERS}
    name = SAFE_NAME.sub("_", event_id)[:100] or "event"
    path = directory / f"{name}.json"
    if max_body_bytes is not None and len(body) > max_body_bytes:
        omitted = {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}
        document: dict[str, Any] = {"headers": kept, "body_omitted": omitted}
    else:
        document = to_json(kept, body)
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False))
    return path


def from_json(raw: Any, source: str = "") -> RecordedRequest:
    """A recording, a structured CloudEvent, or a push envelope, as a request to replay."""
    if not isinstance(raw, dict):
        raise EnvelopeError(f"{source}: not a JSON object")
    if "headers" in raw and "body_omitted" in raw:
        raise EnvelopeError(f"{source}: recorded without its body (over the recording cap)")
    if "headers" in raw and ("body" in raw or "body_base64" in raw):
        if not isinstance(raw["headers"], dict):
            raise EnvelopeError(f"{source}: recording's headers are not an object")
        headers = {str(k): str(v) for k, v in raw["headers"].items()}
        if "body_base64" in raw:
            try:
                body = base64.b64decode(str(raw["body_base64"]), validate=True)
            except binascii.Error as exc:
                raise EnvelopeError(f"{source}: body_base64 is not base64") from exc
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
    """Every request in a file (JSON values, one or more, or JSONL) or a folder of them."""
    if path.is_dir():
        found: list[RecordedRequest] = []
        for child in sorted(path.rglob("*")):
            if child.suffix in EVENT_SUFFIXES and child.is_file():
                found.extend(load_requests(child))
        return found
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise EnvelopeError(f"{path}: not UTF-8 text") from exc
    return parse_requests(text, str(path))


def parse_requests(text: str, source: str) -> list[RecordedRequest]:
    """The requests in JSON text: one value or several in a row (JSONL, or pretty-printed one
    after another), each an object or an array of objects. Sources name the starting line.
    """
    decoder = json.JSONDecoder()
    values: list[tuple[int, Any]] = []
    pos, counted, line = _skip_space(text, 0), 0, 1
    while pos < len(text):
        line += text.count("\n", counted, pos)
        counted = pos
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            # Named by the line the value starts on: in JSONL, the event that is broken.
            raise EnvelopeError(f"{source}:{line}: not valid JSON: {exc.msg}") from exc
        values.append((line, value))
        pos = _skip_space(text, end)
    single = len(values) == 1
    requests: list[RecordedRequest] = []
    for line, value in values:
        where = source if single else f"{source}:{line}"
        items = value if isinstance(value, list) else [value]
        for n, item in enumerate(items):
            requests.append(from_json(item, f"{where}[{n}]" if isinstance(value, list) else where))
    return requests


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos
