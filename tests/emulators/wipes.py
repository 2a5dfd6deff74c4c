"""Reset an emulator's data between tests, through its own HTTP API (stdlib only)."""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING, Any

from .process import EmulatorError, http, http_json, http_ok

if TYPE_CHECKING:
    from collections.abc import Iterator

    from .process import Emulator


def _q(part: str) -> str:
    return urllib.parse.quote(part, safe="")


def _pages(url: str, key: str, params: dict[str, str] | None = None) -> Iterator[dict[str, Any]]:
    token: str | None = None
    while True:
        query = dict(params or {})
        if token:
            query["pageToken"] = token
        page = http_json("GET", f"{url}?{urllib.parse.urlencode(query)}") or {}
        yield from page.get(key) or []
        token = page.get("nextPageToken")
        if not token:
            return


def wipe_firestore(emu: Emulator, project: str, *, database: str = "(default)") -> None:
    """Delete every document of ``project``'s ``database``."""
    http_ok(
        "DELETE",
        f"{emu.url}/emulator/v1/projects/{_q(project)}/databases/{_q(database)}/documents",
    )


def wipe_pubsub(emu: Emulator) -> None:
    """Delete all topics and subscriptions of every project."""
    http_ok("POST", f"{emu.url}/reset", b"")


def wipe_gcs(emu: Emulator) -> None:
    """Delete every object (all generations) and every bucket."""
    base = f"{emu.url}/storage/v1/b"
    for bucket in list(_pages(base, "items")):
        name = bucket["name"]
        objects = f"{base}/{_q(name)}/o"
        for obj in list(_pages(objects, "items", {"versions": "true"})):
            target = f"{objects}/{_q(obj['name'])}"
            if obj.get("generation"):
                target += f"?generation={obj['generation']}"
            status, raw = http("DELETE", target)
            if status not in (200, 204, 404):
                raise EmulatorError(f"DELETE {target} answered {status}: {raw[:300]!r}")
        http_ok("DELETE", f"{base}/{_q(name)}", ok=(200, 204, 404))


def wipe_bigquery(emu: Emulator, project: str, *, jobs: bool = True) -> None:
    """Delete every dataset of ``project`` with its contents, and (``jobs``) every job.

    Jobs are deleted too so that a job id may be reused after a wipe (else: 409 Conflict).
    """
    base = f"{emu.url}/bigquery/v2/projects/{_q(project)}"
    for dataset in list(_pages(f"{base}/datasets", "datasets", {"all": "true"})):
        dataset_id = dataset["datasetReference"]["datasetId"]
        if dataset_id == "_results":  # the emulator's own query results; cleared with the jobs
            continue
        http_ok(
            "DELETE", f"{base}/datasets/{_q(dataset_id)}?deleteContents=true", ok=(200, 204, 404)
        )
    if jobs:
        for job in list(_pages(f"{base}/jobs", "jobs", {"allUsers": "true"})):
            job_id = job["jobReference"]["jobId"]
            http_ok("DELETE", f"{base}/jobs/{_q(job_id)}/delete", ok=(200, 204, 404))
