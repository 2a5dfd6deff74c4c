"""All four emulators wired as production is: uploads notify Pub/Sub, BigQuery reads gs://."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from .process import Emulator, stop
from .starters import start_bigquery, start_firestore, start_gcs, start_pubsub

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@contextlib.contextmanager
def emulator_chain(
    workdir: Path, *, project: str, topic: str
) -> Iterator[tuple[Emulator, Emulator, Emulator, Emulator]]:
    """(firestore, pubsub, gcs, bigquery), each stopped at the end whatever happens.

    fake-gcs-server publishes OBJECT_FINALIZE to ``topic``; BigQuery reads gs:// URIs from
    fake-gcs-server's folder.
    """
    started: list[Emulator] = []
    try:
        firestore = start_firestore(workdir)
        started.append(firestore)
        pubsub = start_pubsub(workdir)
        started.append(pubsub)
        gcs = start_gcs(workdir, pubsub=pubsub, project=project, topic=topic)
        started.append(gcs)
        bigquery = start_bigquery(workdir, gcs_root=gcs.data_dir, project=project)
        started.append(bigquery)
        yield firestore, pubsub, gcs, bigquery
    finally:
        for emulator in reversed(started):
            stop(emulator)
