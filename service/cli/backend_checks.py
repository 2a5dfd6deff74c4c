"""``ingest check-config --all``: try what the settings would use, and say which part fails.

Each check is one line: the credentials (gcp), the data folder (embedded), then the object
store, the warehouse and the ledger, each asked the same question the server's /ready asks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from service.errors import IngestError
from service.settings import Settings

# How a data folder not made yet is reported (the backends in it are then not tried).
NOT_MADE_YET = "not made yet:"
MADE_BY = "(`ingest serve` or `ingest upload` makes it; elsewhere, set INGEST_DATA_DIR)"
# How long each backend gets to answer (a cold connection to Google's APIs included).
PING_SECONDS = 20.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


async def check_backends(settings: Settings) -> list[Check]:
    """Every check that applies, in order; a check that cannot run says why, and stops those
    that depend on it (no clients without credentials, no files without a folder)."""
    from service.wiring import build_backends

    first = _credentials(settings) if settings.backend == "gcp" else _data_folder(settings)
    if not first.ok or first.detail.startswith(NOT_MADE_YET):
        return [first]
    try:
        backends = build_backends(settings)
    except IngestError as exc:
        return [first, Check("backends", ok=False, detail=str(exc))]
    try:
        found = [first]
        for name, backend in (
            ("object store", backends.store),
            ("warehouse", backends.warehouse),
            ("ledger", backends.ledger_store),
        ):
            found.append(await _ping(name, backend.ping))
        return found
    finally:
        await backends.close()


def _credentials(settings: Settings) -> Check:
    from service.wiring import find_credentials

    try:
        return Check("credentials", ok=True, detail=find_credentials(settings))
    except IngestError as exc:
        return Check("credentials", ok=False, detail=str(exc))


def _data_folder(settings: Settings) -> Check:
    """The embedded backends' folder: writable, or not made yet (no fault: serving makes it)."""
    from service.wiring import check_data_dir

    root = settings.data_dir.absolute()
    if not root.exists():
        return Check("data folder", ok=True, detail=f"{NOT_MADE_YET} {root} {MADE_BY}")
    try:
        check_data_dir(settings)
    except IngestError as exc:
        return Check("data folder", ok=False, detail=str(exc))
    return Check("data folder", ok=True, detail=str(root))


async def _ping(name: str, ping: Callable[[], Awaitable[None]]) -> Check:
    try:
        await asyncio.wait_for(ping(), PING_SECONDS)
    except TimeoutError:
        return Check(name, ok=False, detail=f"no answer within {PING_SECONDS:g} s")
    except IngestError as exc:
        return Check(name, ok=False, detail=str(exc))
    return Check(name, ok=True, detail="answers")
