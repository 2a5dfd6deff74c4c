"""The embedded object store: a directory stands in for Cloud Storage.

``ROOT/BUCKET/PATH`` holds the bytes; ``ROOT/.meta/BUCKET/PATH.json`` holds the generation and
metadata. Every write is a new generation, as on GCS, even of identical bytes, also when
several processes write (a lock on ROOT serialises their writes).

Object names are flat strings on GCS: ``a/./b``, ``a//b`` and ``a/b`` are three objects. PATH is
therefore an encoding of the name, never a path the file system resolves: each ``/``-separated
segment keeps its characters except ``%``, control characters and a leading ``.``, which are
percent-encoded (so ``.`` and ``..`` are ``%2E`` and ``%2E.``), and an empty segment is a
lone ``%``. Decoding a listed file gives back the original name; a file whose name is not such
an encoding (a temporary file, a stray) is not an object. Names of data folders written before
this encoding are read unchanged unless they hold ``%``, a control character or a segment
starting with ``.``: upload those again. Limits of the stand-in: a segment may take at most 245
bytes encoded, an object ``a`` cannot be stored beside ``a/b``, and on a case-insensitive file
system (macOS by default) ``A`` and ``a`` are one file.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import heapq
import json
import os
import re
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from service.errors import NotFoundError, PermanentError, TransientError
from service.models import ObjectInfo, ObjectRef
from service.pipeline.checksum import crc32c_base64, md5_base64
from service.ports import ListPage

# Characters a segment never keeps as they are: '%' (the escape), '/', C0 and C1 controls.
UNSAFE = re.compile(r"[%/\x00-\x1f\x7f-\x9f]")
# The stored form of an empty segment (``a//b``); '%' alone is never produced otherwise.
EMPTY_SEGMENT = "%"
# File names hold 255 bytes; the metadata's temporary file adds "." and ".json.tmp".
MAX_SEGMENT_BYTES = 245
META_SUFFIX = ".json"


def _escape(match: re.Match[str]) -> str:
    return "".join(f"%{byte:02X}" for byte in match.group().encode("utf-8"))


def encode_segment(segment: str) -> str:
    if not segment:
        return EMPTY_SEGMENT
    encoded = UNSAFE.sub(_escape, segment)
    return "%2E" + encoded[1:] if encoded.startswith(".") else encoded


def decode_segment(stored: str) -> str | None:
    """The segment a stored file name encodes, or None when it encodes none."""
    if stored == EMPTY_SEGMENT:
        return ""
    try:
        segment = unquote(stored, errors="strict")
    except UnicodeDecodeError:
        return None
    return segment if segment and encode_segment(segment) == stored else None


def encode_name(name: str) -> list[str]:
    """The stored path segments of an object name: one-to-one, nothing resolved."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PermanentError("object name is not valid Unicode") from exc
    if not name:
        raise PermanentError("object name is empty")
    parts = [encode_segment(segment) for segment in name.split("/")]
    if any(len(part.encode("utf-8")) > MAX_SEGMENT_BYTES for part in parts):
        raise PermanentError(
            f"object name has a segment longer than the embedded store holds"
            f" ({MAX_SEGMENT_BYTES} bytes encoded)"
        )
    return parts


def decode_name(parts: tuple[str, ...]) -> str | None:
    segments = [decode_segment(part) for part in parts]
    if any(segment is None for segment in segments):
        return None
    return "/".join(s for s in segments if s is not None)


class DirectoryObjectStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._writing = threading.Lock()  # one write at a time: generations never repeat

    def _bucket_dir(self, bucket: str) -> Path:
        if not bucket or bucket.startswith(".") or encode_segment(bucket) != bucket:
            raise PermanentError("bucket name is not one the embedded store can hold")
        return self.root / bucket

    def _path(self, bucket: str, name: str) -> Path:
        return self._bucket_dir(bucket).joinpath(*encode_name(name))

    def _meta_path(self, bucket: str, name: str) -> Path:
        *folders, last = encode_name(name)
        return self.root.joinpath(".meta", bucket, *folders, last + META_SUFFIX)

    def _read_meta(self, bucket: str, name: str) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self._meta_path(bucket, name).read_text())
            return data
        except (FileNotFoundError, NotADirectoryError):
            return {}

    def _info(self, bucket: str, name: str) -> ObjectInfo:
        path = self._path(bucket, name)
        try:
            stat = path.stat()
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise NotFoundError(f"gs://{bucket}/{name} does not exist") from exc
        except OSError as exc:
            raise TransientError(f"cannot read gs://{bucket}/{name}: {exc}") from exc
        if not path.is_file():
            raise NotFoundError(f"gs://{bucket}/{name} does not exist")
        meta = self._read_meta(bucket, name)
        # Files dropped in by hand have no metadata: their mtime (µs) serves as generation.
        generation = int(meta.get("generation", stat.st_mtime_ns // 1000))
        return ObjectInfo(
            ref=ObjectRef(bucket, name, generation),
            size=stat.st_size,
            content_type=meta.get("content_type"),
            content_encoding=meta.get("content_encoding"),
            md5_base64=meta.get("md5"),
            crc32c_base64=meta.get("crc32c"),
            updated=datetime.fromtimestamp(stat.st_mtime, UTC),
        )

    async def stat(self, ref: ObjectRef) -> ObjectInfo:
        info = await asyncio.to_thread(self._info, ref.bucket, ref.name)
        if ref.generation is not None and ref.generation != info.ref.generation:
            raise NotFoundError(f"{ref.uri}#{ref.generation} is not the live generation")
        return info

    async def read(self, ref: ObjectRef, chunk_bytes: int) -> AsyncIterator[bytes]:
        await self.stat(ref)
        handle = await asyncio.to_thread(self._path(ref.bucket, ref.name).open, "rb")
        try:
            while chunk := await asyncio.to_thread(handle.read, chunk_bytes):
                yield chunk
        finally:
            handle.close()

    async def list(self, bucket: str, prefix: str) -> list[ObjectInfo]:
        def walk() -> list[ObjectInfo]:
            found = sorted(self._names(bucket, prefix))
            return [self._info(bucket, n) for n in found]

        return await asyncio.to_thread(walk)

    async def list_page(
        self, bucket: str, prefix: str, page_token: str | None, page_size: int
    ) -> ListPage:
        """The token is the last name of the page before. Each page walks the prefix again
        but keeps only ``page_size`` names: memory stays flat however many objects match."""

        def page() -> ListPage:
            after = (n for n in self._names(bucket, prefix) if page_token is None or n > page_token)
            names = heapq.nsmallest(page_size + 1, after)
            more = len(names) > page_size
            names = names[:page_size]
            objects = tuple(self._info(bucket, n) for n in names)
            return ListPage(objects, names[-1] if more else None)

        return await asyncio.to_thread(page)

    def _names(self, bucket: str, prefix: str) -> Iterator[str]:
        base = self._bucket_dir(bucket)
        # Only the folders of the prefix's complete segments can hold matching names.
        folders = encode_name(prefix)[:-1] if "/" in prefix else []
        start = base.joinpath(*folders)
        if not start.is_dir():
            return
        for path in start.rglob("*"):
            if path.is_file():
                name = decode_name(path.relative_to(base).parts)
                if name is not None and name.startswith(prefix):
                    yield name

    async def write(self, ref: ObjectRef, data: bytes, content_type: str) -> ObjectRef:
        return await asyncio.to_thread(self.put, ref.bucket, ref.name, data, content_type)

    def put(
        self,
        bucket: str,
        name: str,
        data: bytes,
        content_type: str = "application/octet-stream",
        content_encoding: str | None = None,
    ) -> ObjectRef:
        """Store bytes as the name's next generation (identical bytes too, as GCS does)."""
        path = self._path(bucket, name)
        meta_path = self._meta_path(bucket, name)
        with self._writing, self._across_processes():
            generation = int(self._read_meta(bucket, name).get("generation", 0)) + 1
            meta = {
                "generation": generation,
                "content_type": content_type,
                "content_encoding": content_encoding,
                "md5": md5_base64(data),
                "crc32c": crc32c_base64(data),
            }
            try:
                _replace(path, data)
                _replace(meta_path, json.dumps(meta).encode())
            except (FileExistsError, NotADirectoryError, IsADirectoryError) as exc:
                raise PermanentError(
                    f"gs://{bucket}/{name} cannot be stored beside an object whose name is"
                    " a folder of it (or the other way round) in the embedded store"
                ) from exc
            except OSError as exc:
                raise TransientError(f"cannot write gs://{bucket}/{name}: {exc}") from exc
        return ObjectRef(bucket, name, generation)

    @contextlib.contextmanager
    def _across_processes(self) -> Iterator[None]:
        """An exclusive lock on the store's folder: a server and an `ingest upload` beside it
        (or two uploads) never give one name the same generation twice."""
        folder = os.open(self.root, os.O_RDONLY)  # flock takes a folder too: no extra file
        try:
            fcntl.flock(folder, fcntl.LOCK_EX)  # released when closed
            yield
        finally:
            os.close(folder)

    async def ping(self) -> None:
        if not self.root.is_dir():
            raise NotFoundError(f"object store root {self.root} is missing")

    async def close(self) -> None:
        return None


def _replace(path: Path, data: bytes) -> None:
    """Write a file whole or not at all; the temporary name starts with '.', never an object."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
