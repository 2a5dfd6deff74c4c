"""extract: stream one object generation in chunks, verify it, gunzip when it is gzip."""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import AsyncIterator

from service.errors import PermanentError
from service.pipeline.context import UnitContext
from service.ports import ObjectStore

GZIP_MAGIC = b"\x1f\x8b"


def is_gzip(ctx: UnitContext, head: bytes) -> bool:
    mode = ctx.pipeline.compression
    if mode != "auto":
        return mode == "gzip"
    info = ctx.object
    named = info.ref.name.endswith(".gz") or (info.content_encoding or "").lower() == "gzip"
    return named or head.startswith(GZIP_MAGIC)


async def extract(store: ObjectStore, ctx: UnitContext, chunk_bytes: int) -> AsyncIterator[bytes]:
    """Yields the object's content (decompressed), checking its size and MD5 at the end."""
    md5 = hashlib.md5(usedforsecurity=False)
    size = 0
    inflater: zlib._Decompress | None = None
    first = True
    async for chunk in store.read(ctx.object.ref, chunk_bytes):
        size += len(chunk)
        md5.update(chunk)
        if first:
            first = False
            if is_gzip(ctx, chunk):
                inflater = zlib.decompressobj(wbits=31)
        if inflater is None:
            yield chunk
            continue
        try:
            out = inflater.decompress(chunk)
        except zlib.error as exc:
            raise PermanentError(f"gzip data is corrupt: {exc}") from exc
        if out:
            yield out
    if inflater is not None:
        if not inflater.eof:
            raise PermanentError("gzip stream is truncated")
        tail = inflater.flush()
        if tail:
            yield tail
    _verify(ctx, size, md5.digest())


def _verify(ctx: UnitContext, size: int, md5: bytes) -> None:
    expected = ctx.object
    if expected.size and size != expected.size:
        raise PermanentError(f"object is {size} bytes, the event said {expected.size}")
    if expected.md5_base64 and base64.b64encode(md5).decode() != expected.md5_base64:
        raise PermanentError("object MD5 does not match the event's md5Hash")
