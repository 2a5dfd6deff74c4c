"""The embedded object store: a directory stands in for Cloud Storage.

``ROOT/BUCKET/NAME`` holds the bytes; ``ROOT/.meta/BUCKET/NAME.json`` holds the generation and
metadata. Writing identical bytes keeps the generation; new bytes get the next one, as GCS does.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from service.errors import NotFoundError, PermanentError
from service.models import ObjectInfo, ObjectRef
from service.pipeline.checksum import crc32c_base64, md5_base64


class DirectoryObjectStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, bucket: str, name: str) -> Path:
        path = (self.root / bucket / name).resolve()
        bucket_root = (self.root / bucket).resolve()
        if bucket.startswith(".") or bucket_root not in path.parents:
            raise PermanentError(f"object name escapes its bucket: gs://{bucket}/{name}")
        return path

    def _meta_path(self, bucket: str, name: str) -> Path:
        return self.root / ".meta" / bucket / f"{name}.json"

    def _read_meta(self, bucket: str, name: str) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self._meta_path(bucket, name).read_text())
            return data
        except FileNotFoundError:
            return {}

    def _info(self, bucket: str, name: str) -> ObjectInfo:
        path = self._path(bucket, name)
        try:
            stat = path.stat()
        except FileNotFoundError as exc:
            raise NotFoundError(f"gs://{bucket}/{name} does not exist") from exc
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
            base = self.root / bucket
            if not base.is_dir():
                return []
            names = sorted(p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())
            return [self._info(bucket, n) for n in names if n.startswith(prefix)]

        return await asyncio.to_thread(walk)

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
        """Store bytes; the same bytes keep their generation, new bytes get the next one."""
        path = self._path(bucket, name)
        md5 = md5_base64(data)
        meta = self._read_meta(bucket, name)
        if path.exists() and meta.get("md5") == md5:
            return ObjectRef(bucket, name, int(meta["generation"]))
        generation = int(meta.get("generation", 0)) + 1
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        meta_path = self._meta_path(bucket, name)
        meta_path.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "generation": generation,
            "content_type": content_type,
            "content_encoding": content_encoding,
            "md5": md5,
            "crc32c": crc32c_base64(data),
        }
        meta_path.write_text(json.dumps(meta))
        return ObjectRef(bucket, name, generation)

    async def ping(self) -> None:
        if not self.root.is_dir():
            raise NotFoundError(f"object store root {self.root} is missing")

    async def close(self) -> None:
        return None
