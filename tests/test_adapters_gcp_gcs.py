"""The Cloud Storage adapter's readiness probe, against a client that has the runner's rights.

The emulator grants everything; this client refuses what the deploy plan does not grant the
runner (any project-level call such as listing buckets), as real Cloud Storage would.
"""

from __future__ import annotations

from google.api_core import exceptions as gexc

from service.adapters.gcp.gcs import GcsObjectStore


class ExpiredCredentials:
    def __init__(self) -> None:
        self.valid = False
        self.refreshed = 0

    def refresh(self, request: object) -> None:
        self.refreshed += 1
        self.valid = True


class RunnerClient:
    """Only object rights on named buckets: storage.buckets.list is denied."""

    def __init__(self) -> None:
        self._credentials = ExpiredCredentials()

    def list_buckets(self, **kwargs: object) -> object:
        raise gexc.Forbidden("caller does not have storage.buckets.list access to the project")


async def test_ready_needs_no_project_level_permission() -> None:
    client = RunnerClient()
    store = GcsObjectStore(client)
    await store.ping()
    assert client._credentials.refreshed == 1
