"""extract: chunked reads, gzip (one or many members, by name, encoding or magic), verification."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from service.errors import PermanentError
from service.pipeline.extract import Gunzip, extract
from tests.pipeline_support import Rig, pipeline

TEXT = b"id,name\n" + b"".join(b"%d,row %d\n" % (i, i) for i in range(20_000))


async def read_all(rig: Rig, name: str, data: bytes, **kwargs: object) -> bytes:
    info = await rig.put(name, data, **kwargs)  # type: ignore[arg-type]
    ctx = rig.context(pipeline(), info)
    return b"".join([chunk async for chunk in extract(rig.store, ctx, 4096)])


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    found = Rig(tmp_path)
    yield found
    await found.close()


async def test_plain_bytes_stream_through_unchanged(rig: Rig) -> None:
    assert await read_all(rig, "a.csv", TEXT) == TEXT


async def test_gzip_is_found_by_name_by_encoding_and_by_magic(rig: Rig) -> None:
    packed = gzip.compress(TEXT)
    assert await read_all(rig, "a.csv.gz", packed) == TEXT
    assert await read_all(rig, "b.csv", packed, content_encoding="gzip") == TEXT
    assert await read_all(rig, "c.csv", packed) == TEXT  # no hint but the magic bytes


async def test_compression_none_keeps_gzip_bytes_as_they_are(rig: Rig) -> None:
    packed = gzip.compress(TEXT)
    info = await rig.put("raw.gz", packed)
    ctx = rig.context(pipeline(compression="none"), info)
    assert b"".join([c async for c in extract(rig.store, ctx, 4096)]) == packed


async def test_multi_member_gzip_is_read_whole(rig: Rig) -> None:
    members = gzip.compress(TEXT[:5000]) + gzip.compress(TEXT[5000:]) + gzip.compress(b"")
    assert await read_all(rig, "multi.csv.gz", members) == TEXT


async def test_truncated_gzip_fails_the_file(rig: Rig) -> None:
    packed = gzip.compress(TEXT)
    with pytest.raises(PermanentError, match="truncated"):
        await read_all(rig, "cut.csv.gz", packed[: len(packed) // 2])


async def test_corrupt_gzip_fails_the_file(rig: Rig) -> None:
    packed = bytearray(gzip.compress(TEXT))
    packed[20:40] = b"\xff" * 20
    with pytest.raises(PermanentError, match="corrupt"):
        await read_all(rig, "bad.csv.gz", bytes(packed))


async def test_size_and_md5_from_the_event_are_checked(rig: Rig) -> None:
    info = await rig.put("a.csv", TEXT)
    store = rig.store
    wrong_size = rig.context(pipeline(), replace(info, size=info.size + 1))
    with pytest.raises(PermanentError, match="bytes, the event said"):
        [c async for c in extract(store, wrong_size, 4096)]
    wrong_md5 = rig.context(pipeline(), replace(info, md5_base64="AAAAAAAAAAAAAAAAAAAAAA=="))
    with pytest.raises(PermanentError, match="MD5"):
        [c async for c in extract(store, wrong_md5, 4096)]


def test_inflated_output_comes_in_bounded_pieces() -> None:
    bomb = zlib.compressobj(wbits=31)
    packed = bomb.compress(b"\0" * (50 * 1024 * 1024)) + bomb.flush()
    inflater = Gunzip()
    sizes = [len(piece) for piece in inflater.feed(packed)]
    inflater.finish()
    assert sum(sizes) == 50 * 1024 * 1024
    assert max(sizes) <= 4 * 1024 * 1024
