"""The memory of a sweep's fan-out over a very long listing: a stub store hands out N objects a
page at a time, the ledger is in memory, the work topic only counts. Peak RSS is measured after
a warm-up of one page and after the whole listing: flat means the growth does not scale with N.
"""

from __future__ import annotations

import resource
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from service.adapters.memory import MemoryLedgerStore, MemorySweepCursors
from service.fanout import FanOut
from service.models import EventMeta, SweepRequested
from service.pipeline.definition import PipelineSet
from service.pipeline.pipelines_file import load_pipelines
from tests.listing_kit import PagedStore

PIPELINES = """
[[pipelines]]
name = "stub"
bucket = "stub-landing"
prefix = "in/"
table = "stub.rows"
schema = "schema.json"
"""
NOW = datetime(2026, 11, 21, tzinfo=UTC)


class CountingTopic:
    def __init__(self) -> None:
        self.published = 0

    async def publish(self, data: bytes, attributes: Mapping[str, str]) -> None:
        self.published += 1

    async def close(self) -> None:
        return None


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def sweep_stub(pipelines: PipelineSet, count: int, event_id: str) -> int:
    topic = CountingTopic()
    fanout = FanOut(
        pipelines,
        PagedStore(count, bucket="stub-landing", prefix="in/", keep_tokens=False),
        MemoryLedgerStore(),
        topic,
        MemorySweepCursors(),
        clock=lambda: NOW,
    )
    meta = EventMeta(event_id, "bench", "bench")
    outcome = await fanout.sweep(SweepRequested(meta, "stub", prefix="in/"))
    assert outcome.published == topic.published == count, outcome
    return topic.published


async def listing_memory(count: int) -> int:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "schema.json").write_text('[{"name": "id", "type": "INTEGER"}]')
        (Path(folder) / "pipelines.toml").write_text(PIPELINES)
        pipelines = load_pipelines(Path(folder) / "pipelines.toml")
    await sweep_stub(pipelines, 1000, "warm-up")
    warm = peak_rss_mb()
    published = await sweep_stub(pipelines, count, "long")
    peak = peak_rss_mb()
    print(
        f"listed={count} published={published} peak_rss_mb={peak:.1f} "
        f"growth_after_one_page_mb={peak - warm:.1f}",
        flush=True,
    )
    return 0
