"""extract: stream one object generation in chunks, verify it, gunzip when it is gzip.

Never holds more than one chunk (and its inflated form) in memory. Size and checksum (CRC32C,
or MD5 when the event has no CRC32C) are checked against what the event said once the last
byte is in; a mismatch fails the unit, so rows of a
torn or substituted object never reach the warehouse (the load happens after extract ends).
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator, Iterator

from service.errors import PermanentError
from service.pipeline.checksum import Digest, ExpectedChecksum, expected_checksum
from service.pipeline.context import UnitContext
from service.ports import ObjectStore

# Inflated output is produced at most this many bytes at a time (a zip bomb stays bounded).
INFLATE_STEP = 4 * 1024 * 1024


class Gunzip:
    """Inflates a gzip stream of one or more members (``cat a.gz b.gz`` is valid gzip)."""

    def __init__(self) -> None:
        self._inflater = zlib.decompressobj(wbits=31)
        self._in_member = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        while data:
            self._in_member = True
            try:
                out = self._inflater.decompress(data, INFLATE_STEP)
                data = self._inflater.unconsumed_tail
            except zlib.error as exc:
                raise PermanentError(f"gzip data is corrupt: {exc}") from exc
            if out:
                yield out
            if self._inflater.eof:
                data = self._inflater.unused_data + data
                self._inflater = zlib.decompressobj(wbits=31)
                self._in_member = False
                # Padding after the last member (some writers add NULs) is not a new member.
                if not data.strip(b"\x00"):
                    return

    def finish(self) -> None:
        if self._in_member:
            raise PermanentError("gzip stream is truncated")


async def extract(store: ObjectStore, ctx: UnitContext, chunk_bytes: int) -> AsyncIterator[bytes]:
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
                gunzip = Gunzip()
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
