"""Property-based: random and mutated deliveries never escape as an unhandled error or a 500.

Mutations start from the recorded table (tests/events/) so they reach deep into every decoder:
a JSON value replaced, removed or made hostile (base64 message data is opened and mutated
inside too), bytes flipped, inserted or cut, headers dropped, changed or added.
Deterministic (derandomize) and modest in size: the machine has two cores.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from quart.typing import TestClientProtocol as Client

from service.app import create_app
from service.errors import EnvelopeError, UnsupportedMediaError
from service.events import decode
from service.events.storage import BUCKET_NAME
from service.models import Event, Ignored, ObjectFinalized, SweepRequested
from service.settings import Settings
from tests.conftest import EXAMPLES
from tests.events import FILES, load

PROFILE = settings(derandomize=True, deadline=None, database=None)
B64 = object()  # a path step into a base64 string holding JSON
DELETE = object()  # a mutation that removes the key or item

HEADER_NAMES = [
    "content-type",
    "ce-specversion",
    "ce-id",
    "ce-type",
    "ce-source",
    "ce-subject",
    "ce-time",
    "x-goog-pubsub-message-id",
    "x-goog-pubsub-publish-time",
    "x-goog-pubsub-subscription-name",
    "payloadformat",
    "eventtype",
    "bucketid",
    "objectid",
    "objectgeneration",
    "pipeline",
    "date",
]
INTERESTING_TEXT = [
    "",
    "1.0",
    "0",
    "-1",
    "99999999999999999999",
    "٣",
    "..",
    "../..",
    "a\r\nb",
    "\ud800",
    "%",
    "%zz",
    "objects/",
    "NONE",
    "JSON_API_V1",
    "OBJECT_FINALIZE",
    "OBJECT_DELETE",
    "google.cloud.storage.object.v1.finalized",
    "google.cloud.pubsub.topic.v1.messagePublished",
    "application/json",
    "application/cloudevents+json",
    "application/cloudevents-batch+json",
    "2026-02-30",
    "2026-11-21T22:00:00Z",
    "9" * 5000,
]
# Bodies that break naive JSON handling: deep nesting, a number past the int digit limit.
HOSTILE_BODIES = [b"[" * 50_000 + b"]" * 50_000, b'{"a": ' + b"9" * 5000 + b"}", b"\xff\xfe"]
# Header values an HTTP client can send: latin-1 without control characters.
header_text = st.text(
    st.characters(codec="latin-1", categories=["L", "N", "P", "S", "Zs"]), max_size=40
) | st.sampled_from([t for t in INTERESTING_TEXT if t.isprintable() and len(t) < 100])
json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(INTERESTING_TEXT)
)
json_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in a JSON value, including inside base64 strings that hold JSON."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths(item, (*prefix, index))
    elif isinstance(value, str) and len(value) >= 4:
        inner = b64_json(value)
        if isinstance(inner, dict | list):
            yield from paths(inner, (*prefix, B64))


def b64_json(value: str) -> Any:
    try:
        return json.loads(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        return None


def replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    step, rest = path[0], path[1:]
    if step is B64:
        inner = replaced(b64_json(value), rest, new)
        return base64.b64encode(json.dumps(inner).encode()).decode()
    copy = dict(value) if isinstance(value, dict) else list(value)
    if new is DELETE and not rest:
        del copy[step]
    else:
        copy[step] = replaced(copy[step], rest, new)
    return copy


@st.composite
def mutated_requests(draw: st.DrawFn) -> tuple[dict[str, str], bytes]:
    request, _ = load(draw(st.sampled_from(FILES)))
    headers = dict(request.headers)
    body = request.body
    kind = draw(st.sampled_from(["json", "json", "bytes", "headers"]))
    if kind == "json":
        try:
            document = json.loads(body)
        except ValueError:
            document = None
        if document is not None:
            where = draw(st.sampled_from(list(paths(document))))
            removable = bool(where) and where[-1] is not B64
            new = draw(json_value | st.just(DELETE)) if removable else draw(json_value)
            body = json.dumps(replaced(document, where, new)).encode()
    elif kind == "bytes" and body:
        at = draw(st.integers(0, len(body) - 1))
        action = draw(st.sampled_from(["flip", "insert", "cut"]))
        if action == "flip":
            body = body[:at] + bytes([body[at] ^ draw(st.integers(1, 255))]) + body[at + 1 :]
        elif action == "insert":
            body = body[:at] + draw(st.binary(min_size=1, max_size=8)) + body[at:]
        else:
            body = body[:at]
    else:
        name = draw(st.sampled_from(sorted(headers) + HEADER_NAMES))
        if name in headers and draw(st.booleans()):
            del headers[name]
        else:
            headers[name] = draw(header_text)
    return headers, body


random_requests = st.tuples(
    st.dictionaries(st.sampled_from(HEADER_NAMES), header_text, max_size=6),
    st.binary(max_size=300)
    | json_value.map(lambda v: json.dumps(v).encode())
    | st.sampled_from(HOSTILE_BODIES),
)


def check_decodes_or_refuses(headers: dict[str, str], body: bytes) -> None:
    try:
        event = decode(headers, body)
    except (EnvelopeError, UnsupportedMediaError):
        return
    check_event(event)


def check_event(event: Event) -> None:
    """What every decoded event guarantees to the core."""
    assert isinstance(event, ObjectFinalized | SweepRequested | Ignored)
    assert event.meta.event_id
    if isinstance(event, ObjectFinalized):
        ref = event.object.ref
        assert ref.generation is not None and 0 < ref.generation < 2**63
        assert BUCKET_NAME.fullmatch(ref.bucket)
        assert ref.name and "\n" not in ref.name and len(ref.name.encode()) <= 1024
        assert event.object.size >= 0
    if isinstance(event, SweepRequested):
        assert event.pipeline.strip()


@settings(PROFILE, max_examples=300)
@given(mutated_requests())
def test_mutated_recordings_decode_or_are_refused(request: tuple[dict[str, str], bytes]) -> None:
    check_decodes_or_refuses(*request)


@settings(PROFILE, max_examples=200)
@given(random_requests)
def test_random_requests_decode_or_are_refused(request: tuple[dict[str, str], bytes]) -> None:
    check_decodes_or_refuses(*request)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[asyncio.Runner, Any]]:
    """One app for all examples, on its own event loop (hypothesis drives it synchronously)."""
    data_dir: Path = tmp_path_factory.mktemp("properties")
    settings_ = Settings(
        data_dir=data_dir, pipelines_file=EXAMPLES / "pipelines.toml", log_format="text"
    )
    runner = asyncio.Runner()
    test_app = create_app(settings_).test_app()
    runner.run(test_app.startup())
    try:
        yield runner, test_app.test_client()
    finally:
        runner.run(test_app.shutdown())
        runner.close()


ALLOWED = {200, 400, 413, 415, 429, 503}


def post(client: tuple[asyncio.Runner, Client], request: tuple[dict[str, str], bytes]) -> None:
    runner, test_client = client
    response = runner.run(test_client.post("/", headers=request[0], data=request[1]))
    assert response.status_code in ALLOWED
    answer = runner.run(response.get_json())
    assert isinstance(answer, dict) and isinstance(answer["status"], str)


@settings(PROFILE, max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(request=mutated_requests() | random_requests)
def test_the_app_never_answers_500(
    client: tuple[asyncio.Runner, Client], request: tuple[dict[str, str], bytes]
) -> None:
    post(client, request)
