"""extract: chunked reads, gzip (one or many members, by name, encoding or magic), verification."""

from __future__ import annotations

import base64
import gzip
import zlib
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from service.errors import PermanentError
from service.pipeline.checksum import crc32c_base64
from service.pipeline.extract import (
    INFLATE_ALLOWANCE_BYTES,
    PARQUET_MAX_INFLATE_RATIO,
    Gunzip,
    extract,
)
from tests.pipeline_support import Rig, chunks, pipeline

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


async def test_size_and_crc32c_from_the_event_are_checked(rig: Rig) -> None:
    info = await rig.put("a.csv", TEXT)
    assert info.crc32c_base64 and info.md5_base64  # as in every storage event
    store = rig.store
    wrong_size = rig.context(pipeline(), replace(info, size=info.size + 1))
    with pytest.raises(PermanentError, match="bytes, the event said"):
        [c async for c in extract(store, wrong_size, 4096)]
    wrong_crc = rig.context(pipeline(), replace(info, crc32c_base64="AAAAAA=="))
    with pytest.raises(PermanentError, match="CRC32C"):
        [c async for c in extract(store, wrong_crc, 4096)]
    # With a CRC32C to check, the MD5 is not computed (it costs ten times the CPU).
    wrong_md5 = rig.context(pipeline(), replace(info, md5_base64="AAAAAAAAAAAAAAAAAAAAAA=="))
    assert b"".join([c async for c in extract(store, wrong_md5, 4096)]) == TEXT


async def test_md5_is_checked_when_the_event_has_no_crc32c(rig: Rig) -> None:
    info = replace(await rig.put("a.csv", TEXT), crc32c_base64=None)
    right = rig.context(pipeline(), info)
    assert b"".join([c async for c in extract(rig.store, right, 4096)]) == TEXT
    wrong_md5 = rig.context(pipeline(), replace(info, md5_base64="AAAAAAAAAAAAAAAAAAAAAA=="))
    with pytest.raises(PermanentError, match="MD5"):
        [c async for c in extract(rig.store, wrong_md5, 4096)]


async def test_crc32c_is_the_one_cloud_storage_reports() -> None:
    # RFC 3720's check value for CRC32C("123456789") is 0xE3069283 (big-endian, base64).
    assert crc32c_base64(b"123456789") == base64.b64encode(bytes.fromhex("e3069283")).decode()


def test_inflated_output_comes_in_bounded_pieces() -> None:
    bomb = zlib.compressobj(wbits=31)
    packed = bomb.compress(b"\0" * (50 * 1024 * 1024)) + bomb.flush()
    inflater = Gunzip()
    sizes = [len(piece) for piece in inflater.feed(packed)]
    inflater.finish()
    assert sum(sizes) == 50 * 1024 * 1024
    assert max(sizes) <= 4 * 1024 * 1024


def zeros_gzip(size: int) -> bytes:
    """A decompression bomb: ``size`` zero bytes in about a thousandth of that."""
    bomb = zlib.compressobj(9, wbits=31)
    return bomb.compress(bytes(size)) + bomb.flush()


def test_a_bomb_fails_past_the_ratio_before_it_is_all_inflated() -> None:
    inflater = Gunzip(max_ratio=10, allowance=1024 * 1024)
    out = 0
    with pytest.raises(PermanentError, match="decompression bomb"):
        for chunk in chunks(zeros_gzip(20 * 1024 * 1024), 4096):
            for piece in inflater.feed(chunk):
                out += len(piece)
    assert out <= 1024 * 1024 + 4 * 1024 * 1024  # the allowance and one inflate step at most


def test_without_a_ratio_the_same_bytes_inflate_whole() -> None:
    inflater = Gunzip()
    assert sum(len(p) for p in inflater.feed(zeros_gzip(20 * 1024 * 1024))) == 20 * 1024 * 1024


async def test_a_gzip_bomb_in_a_parquet_pipeline_fails_in_extract(rig: Rig) -> None:
    size = INFLATE_ALLOWANCE_BYTES + 32 * 1024 * 1024
    info = await rig.put("bomb.parquet.gz", zeros_gzip(size))
    rejected = await rig.reject(pipeline(format="parquet"), info)
    assert rejected.stage == "extract"
    assert "decompression bomb" in rejected.reason


async def test_a_gzip_csv_may_inflate_past_the_parquet_ratio(rig: Rig) -> None:
    rows = b"id,name,amount,day\n" + b"1,a,1,2026-11-20\n" * 200_000
    info = await rig.put("many.csv.gz", gzip.compress(rows))
    ctx = rig.context(pipeline(), info)
    inflated = b"".join([chunk async for chunk in extract(rig.store, ctx, 4096)])
    assert len(inflated) > PARQUET_MAX_INFLATE_RATIO * info.size  # streamed, never spooled
