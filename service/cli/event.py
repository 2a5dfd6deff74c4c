"""``ingest event``: print a ready-to-replay event in the exact shape Google's services send."""

from __future__ import annotations

import datetime as dt
import json
import mimetypes
from typing import Any

import click

from service.cli import main
from service.cli.common import (
    err_console,
    load_pipelines,
    load_settings,
    open_backends,
    pipeline_named,
    run_async,
)
from service.cli.options import date_option, shape_option
from service.models import ObjectInfo, ObjectRef
from service.recording import RecordedRequest
from service.samples import (
    object_resource,
    resource_from_info,
    scheduler_cloudevent,
    scheduler_push,
    storage_cloudevent,
    storage_notification_push,
    storage_structured_cloudevent,
)

# The delivery shapes each event can be printed in, and what sends them.
STORAGE_SHAPES = {
    "cloudevent": "Eventarc, binary-mode CloudEvent (the default)",
    "structured": "a structured-mode CloudEvent (application/cloudevents+json)",
    "notification": "a GCS Pub/Sub notification (JSON_API_V1) in a push envelope",
}
SCHEDULER_SHAPES = {
    "push": "Cloud Scheduler -> Pub/Sub -> push subscription (the default)",
    "cloudevent": "Cloud Scheduler -> Pub/Sub -> Eventarc messagePublished CloudEvent",
}


@main.group()
def event() -> None:
    """Print a ready-to-replay event (JSON) on stdout.

    The output is a recorded request ({"headers", "body"}): save it and `ingest replay FILE`,
    or pipe it: `ingest event ... | ingest replay - --in-process`.
    """


@event.command()
@click.option("--bucket", required=True, help="The bucket the object is in.")
@click.option("--name", required=True, help="The object's name (path) in the bucket.")
@click.option(
    "--generation",
    type=click.IntRange(min=1),
    help="The object generation. Omitted: read the live generation, size and md5 from the "
    "configured object store (INGEST_BACKEND).",
)
@shape_option(STORAGE_SHAPES, "cloudevent")
@click.option("--event-id", help="The event id (default: a random one, as Google's are).")
def storage(
    bucket: str, name: str, generation: int | None, shape: str, event_id: str | None
) -> None:
    """An object-finalize event: a file landed in a bucket."""
    if generation is None:
        info = _live_object(bucket, name)
        resource = resource_from_info(info)
    else:
        guessed, _ = mimetypes.guess_type(name)
        resource = object_resource(
            bucket, name, generation, content_type=guessed or "application/octet-stream"
        )
    _warn_unmatched(bucket, name)
    build = {
        "cloudevent": storage_cloudevent,
        "structured": storage_structured_cloudevent,
        "notification": storage_notification_push,
    }[shape]
    _print(build(resource, event_id))


@event.command()
@click.option("--pipeline", required=True, help="The pipeline to sweep (from the pipelines file).")
@date_option
@shape_option(SCHEDULER_SHAPES, "push")
def scheduler(pipeline: str, date: dt.datetime | None, shape: str) -> None:
    """A Cloud Scheduler sweep request: ingest every new object of one pipeline."""
    pipeline_named(load_pipelines(load_settings()), pipeline)  # one line naming the known ones
    day = date.date().isoformat() if date else None
    build = scheduler_push if shape == "push" else scheduler_cloudevent
    _print(build(pipeline, day))


def _live_object(bucket: str, name: str) -> ObjectInfo:
    async def stat() -> ObjectInfo:
        async with open_backends(load_settings()) as backends:
            return await backends.store.stat(ObjectRef(bucket, name))

    return run_async(stat)


def _warn_unmatched(bucket: str, name: str) -> None:
    """A note on stderr when no pipeline would take the object (the event would be ignored)."""
    pipelines = load_pipelines(load_settings())
    if not pipelines.matching(bucket, name):
        err_console.print(f"note: no pipeline matches gs://{bucket}/{name}", markup=False)


def _print(request: RecordedRequest) -> None:
    """The recording with its body as a JSON value, so it reads (and edits) easily."""
    from service.errors import EnvelopeError
    from service.events import decode

    try:
        decode(request.headers, request.body)  # what the service would make of it
    except EnvelopeError as exc:
        raise click.ClickException(f"the service would refuse this event: {exc}") from exc
    body: Any = json.loads(request.body)
    click.echo(json.dumps({"headers": request.headers, "body": body}, indent=2))
