"""A listing stub: N objects handed out a page at a time, for the fan-out's tests and the
memory measurement in bench/scale_listing.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

from service.errors import TransientError
from service.models import ObjectInfo, ObjectRef
from service.ports import ListPage, ObjectStore

NOW = datetime(2026, 11, 21, 12, tzinfo=UTC)


class PagedStore:
    """A listing stub: ``count`` objects under orders/, ``page`` names a page; ``fail_at``
    makes the listing of that page fail once (a sweep cut off)."""

    def __init__(
        self,
        count: int,
        fail_at: int | None = None,
        *,
        bucket: str = "landing",
        prefix: str = "orders/",
        keep_tokens: bool = True,
    ) -> None:
        self.count = count
        self.bucket = bucket
        self.prefix = prefix
        self.keep_tokens = keep_tokens
        self.fail_at = fail_at
        self.tokens: list[str | None] = []

    def info(self, index: int) -> ObjectInfo:
        ref = ObjectRef(self.bucket, f"{self.prefix}2026-11-20-{index:06d}.csv", 1)
        return ObjectInfo(ref, 10, "text/csv", md5_base64=f"md5-{index}", updated=NOW)

    async def list_page(
        self, bucket: str, prefix: str, page_token: str | None, page_size: int
    ) -> ListPage:
        if self.keep_tokens:
            self.tokens.append(page_token)
        start = int(page_token or 0)
        if self.fail_at is not None and start == self.fail_at:
            self.fail_at = None
            raise TransientError("listing unavailable")
        end = min(start + page_size, self.count)
        objects = tuple(self.info(i) for i in range(start, end))
        return ListPage(objects, str(end) if end < self.count else None)

    def read(self, ref: ObjectRef, chunk_bytes: int) -> AsyncIterator[bytes]:
        raise NotImplementedError

    async def list(self, bucket: str, prefix: str) -> list[ObjectInfo]:
        raise NotImplementedError

    async def stat(self, ref: ObjectRef) -> ObjectInfo:
        raise NotImplementedError

    async def write(self, ref: ObjectRef, data: bytes, content_type: str) -> ObjectRef:
        raise NotImplementedError

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None


async def all_pages(store: ObjectStore, bucket: str, prefix: str, size: int) -> list[list[str]]:
    """The names of each page of a listing, following the tokens (at most 100 pages)."""
    pages, token = [], None
    for _ in range(100):  # bounded
        page = await store.list_page(bucket, prefix, token, size)
        pages.append([o.ref.name for o in page.objects])
        token = page.next_token
        if token is None:
            break
    return pages
