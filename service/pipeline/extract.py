"""extract: stream one object generation in chunks, verify it, gunzip when it is gzip.

Never holds more than one chunk (and its inflated form) in memory; a Parquet file (spooled
whole before it is read) may not inflate past a bounded ratio. Size and checksum (CRC32C,
or MD5 when the event has no CRC32C) are checked against what the event said once the last
byte is in; a mismatch fails the unit, so rows of a
torn or substituted object never reach the warehouse (the load happens after extract ends).
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncGenerator, Iterator

from service.errors import PermanentError
from service.pipeline.checksum import Digest, ExpectedChecksum, expected_checksum
from service.pipeline.context import UnitContext
from service.ports import ObjectStore

# Inflated output is produced at most this many bytes at a time (a zip bomb stays bounded).
INFLATE_STEP = 4 * 1024 * 1024
# A gzip Parquet file is spooled to local disk (memory on Cloud Run) before it is read, and
# Parquet compresses itself: inflating past this many times the bytes read is a bomb, not data.
PARQUET_MAX_INFLATE_RATIO = 100
# Inflated bytes allowed whatever the ratio (small files of very repetitive data).
INFLATE_ALLOWANCE_BYTES = 64 * 1024 * 1024


def max_inflate_ratio(ctx: UnitContext) -> int | None:
    """How far a unit's gzip may inflate; None is no limit (streamed formats)."""
    return PARQUET_MAX_INFLATE_RATIO if ctx.pipeline.format == "parquet" else None


class Gunzip:
    """Inflates a gzip stream of one or more members (``cat a.gz b.gz`` is valid gzip).

    With ``max_ratio``, output past ``allowance`` bytes and past ``max_ratio`` times the
    compressed bytes fed so far fails the file before it is written anywhere.
    """

    def __init__(
        self, max_ratio: int | None = None, allowance: int = INFLATE_ALLOWANCE_BYTES
    ) -> None:
        self._inflater = zlib.decompressobj(wbits=31)
        self._in_member = False
        self.max_ratio = max_ratio
        self.allowance = allowance
        self.fed = 0
        self.inflated = 0

    def feed(self, data: bytes) -> Iterator[bytes]:
        self.fed += len(data)
        while data:
            self._in_member = True
            try:
                out = self._inflater.decompress(data, INFLATE_STEP)
                data = self._inflater.unconsumed_tail
            except zlib.error as exc:
                raise PermanentError(f"gzip data is corrupt: {exc}") from exc
            self._count(len(out))
            if out:
                yield out
            if self._inflater.eof:
                data = self._inflater.unused_data + data
                self._inflater = zlib.decompressobj(wbits=31)
                self._in_member = False
                # Padding after the last member (some writers add NULs) is not a new member.
                if not data.strip(b"\x00"):
                    return

    def _count(self, inflated: int) -> None:
        self.inflated += inflated
        if self.max_ratio is None or self.inflated <= self.allowance:
            return
        if self.inflated > self.max_ratio * self.fed:
            raise PermanentError(
                f"gzip inflates to more than {self.max_ratio} times its size (a decompression"
                f" bomb?): refused after {self.inflated} bytes from {self.fed}"
            )

    def finish(self) -> None:
        if self._in_member:
            raise PermanentError("gzip stream is truncated")


async def extract(
    store: ObjectStore, ctx: UnitContext, chunk_bytes: int
) -> AsyncGenerator[bytes, None]:
    """Yields the object's content (decompressed), checking its size and checksum at the end."""
    expected = expected_checksum(ctx.object)
    digest = expected.start() if expected is not None else None
    inline = expected is None or expected.fast
    size = 0
    gunzip: Gunzip | None = None
    first = True
    async for chunk in store.read(ctx.object.ref, chunk_bytes):
        size += len(chunk)
        if digest is not None:
            await _hash(digest, chunk, inline=inline)
        if first:
            first = False
            if ctx.is_gzip(chunk):
                gunzip = Gunzip(max_inflate_ratio(ctx))
        if gunzip is None:
            yield chunk
            continue
        for out in gunzip.feed(chunk):
            yield out
    if gunzip is not None:
        gunzip.finish()
    _verify(ctx, size, expected, digest)


async def _hash(digest: Digest, chunk: bytes, *, inline: bool) -> None:
    if inline:
        digest.update(chunk)
    else:
        # MD5 runs beside the other stages (hashlib lets go of the GIL).
        await asyncio.to_thread(digest.update, chunk)


def _verify(
    ctx: UnitContext, size: int, expected: ExpectedChecksum | None, digest: Digest | None
) -> None:
    if ctx.object.size and size != ctx.object.size:
        raise PermanentError(f"object is {size} bytes, the event said {ctx.object.size}")
    if expected is not None and digest is not None and not expected.matches(digest):
        raise PermanentError(f"object {expected.kind} does not match the event's checksum")
