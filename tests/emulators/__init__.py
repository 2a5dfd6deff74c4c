"""Local Google Cloud emulators for tests: Firestore, Pub/Sub, Cloud Storage, BigQuery.

Each ``start_*`` picks a free port on 127.0.0.1, starts the emulator in its own process group
(log in ``workdir/NAME.log``), waits until it really answers and returns an :class:`Emulator`;
``stop()`` ends it. ``wipe_*`` empty one between tests. Only the standard library is used here,
so this works whatever client libraries are installed. Set-up: ``scripts/setup-emulators``.
"""

from __future__ import annotations

from .chain import emulator_chain
from .paths import EmulatorNotInstalledError, ensure_installed
from .process import Emulator, EmulatorError, PortClashError, stop
from .starters import start_bigquery, start_firestore, start_gcs, start_pubsub
from .wipes import wipe_bigquery, wipe_firestore, wipe_gcs, wipe_pubsub

__all__ = [
    "Emulator",
    "EmulatorError",
    "EmulatorNotInstalledError",
    "PortClashError",
    "emulator_chain",
    "ensure_installed",
    "start_bigquery",
    "start_firestore",
    "start_gcs",
    "start_pubsub",
    "stop",
    "wipe_bigquery",
    "wipe_firestore",
    "wipe_gcs",
    "wipe_pubsub",
]
