"""Cloud Storage as the ObjectStore (google-cloud-storage; blocking calls run in threads)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.auth.transport.requests import Request as AuthRequest
from google.cloud.storage import Client as StorageClient

from service.adapters.gcp.errors import translate
from service.errors import NotFoundError
from service.models import ObjectInfo, ObjectRef
from service.ports import ListPage
from service.settings import Settings

# Bytes per ranged download: each request pays a round trip before its first byte, and a range
# per 1 MiB chunk pays one per MiB (the client's own default range is 40 MiB). One range is
# buffered per unit reading, outside the byte budget (16 MiB x MAX_UNITS_IN_FLIGHT).
RANGE_BYTES = 16 * 1024 * 1024


class GcsObjectStore:
    def __init__(self, client: StorageClient) -> None:
        self.client = client

    @classmethod
    def from_settings(cls, settings: Settings) -> GcsObjectStore:
        if settings.storage_emulator_host:
            client = StorageClient(
                project=settings.project,
                credentials=AnonymousCredentials(),
                client_options={"api_endpoint": settings.storage_emulator_host},
            )
        else:
            client = StorageClient(project=settings.project)
        return cls(client)

    async def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except Exception as exc:
            raise translate(exc, what) from exc

    async def stat(self, ref: ObjectRef) -> ObjectInfo:
        bucket = self.client.bucket(ref.bucket)
        # objects.get (metadata): storage.objects.get (objectViewer on the source bucket). A
        # read, so the client retries 408/429/5xx with backoff (Cloud Storage retry strategy).
        blob = await self._call(
            f"stat {ref.uri}", bucket.get_blob, ref.name, generation=ref.generation
        )
        if blob is None:
            raise NotFoundError(f"{ref.uri}#{ref.generation} does not exist")
        return _info(blob)

    async def read(self, ref: ObjectRef, chunk_bytes: int) -> AsyncIterator[bytes]:
        blob = self.client.bucket(ref.bucket).blob(ref.name, generation=ref.generation)
        what = f"read {ref.uri}#{ref.generation}"
        # raw_download keeps gzip-encoded objects compressed: the extract stage inflates them.
        # objects.get (media), one ranged request per RANGE_BYTES: storage.objects.get; reads
        # are retried. The reader buffers a range and hands it on chunk_bytes at a time.
        size = max(chunk_bytes, RANGE_BYTES)
        reader = await self._call(what, blob.open, "rb", chunk_size=size, raw_download=True)
        try:
            while chunk := await self._call(what, reader.read, chunk_bytes):
                yield chunk
        finally:
            reader.close()

    async def list(self, bucket: str, prefix: str) -> list[ObjectInfo]:
        def listing() -> list[ObjectInfo]:
            # objects.list, 1,000 per page: storage.objects.list (objectViewer); retried.
            return [_info(b) for b in self.client.list_blobs(bucket, prefix=prefix)]

        result: list[ObjectInfo] = await self._call(f"list gs://{bucket}/{prefix}", listing)
        return result

    async def list_page(
        self, bucket: str, prefix: str, page_token: str | None, page_size: int
    ) -> ListPage:
        def one_page() -> ListPage:
            # objects.list, one page (maxResults at most 1,000): storage.objects.list
            # (objectViewer); a read, retried by the client on 408/429/5xx. The page token is
            # the API's own, valid for the same bucket, prefix and page size.
            found = self.client.list_blobs(
                bucket, prefix=prefix, page_token=page_token, page_size=page_size
            )
            page = next(found.pages, None)
            objects = tuple(_info(b) for b in page) if page is not None else ()
            return ListPage(objects, found.next_page_token or None)

        result: ListPage = await self._call(f"list gs://{bucket}/{prefix}", one_page)
        return result

    async def write(self, ref: ObjectRef, data: bytes, content_type: str) -> ObjectRef:
        blob = self.client.bucket(ref.bucket).blob(ref.name)
        # objects.insert: storage.objects.create, and .delete to replace (objectUser on the
        # quarantine prefix). Without a generation precondition the client does not retry
        # it; a failure is Transient and the unit's redelivery writes it again.
        await self._call(
            f"write {ref.uri}", blob.upload_from_string, data, content_type=content_type
        )
        return ObjectRef(ref.bucket, ref.name, blob.generation)

    async def copy_generation(self, source: ObjectRef, target: ObjectRef) -> ObjectRef:
        """objects.rewrite with sourceGeneration: storage.objects.get on the source and
        storage.objects.create on the target (the runner's objectUser on the quarantine
        prefix). ifGenerationMatch=0 never overwrites; a 412 means an earlier attempt made
        this very copy (the name holds the generation). Within one location and storage class
        the copy is one call; otherwise it is repeated with the rewrite token until done.
        The client retries 429/5xx itself: with a generation precondition the call is
        idempotent (DEFAULT_RETRY_IF_GENERATION_SPECIFIED)."""
        origin = self.client.bucket(source.bucket).blob(source.name, generation=source.generation)
        copy = self.client.bucket(target.bucket).blob(target.name)

        def rewrite() -> int | None:
            token = None
            try:
                while True:
                    token, _, _ = copy.rewrite(origin, token=token, if_generation_match=0)
                    if token is None:
                        return int(copy.generation)
            except gexc.PreconditionFailed:
                return None  # the copy exists already: the same bytes

        what = f"copy {source.uri}#{source.generation} to {target.uri}"
        generation = await self._call(what, rewrite)
        return ObjectRef(target.bucket, target.name, generation)

    async def delete(self, ref: ObjectRef) -> None:
        # objects.delete: storage.objects.delete (objectUser on the quarantine prefix).
        # Not retried by the client without a generation; with one it is idempotent.
        bucket = self.client.bucket(ref.bucket)
        with contextlib.suppress(NotFoundError):
            await self._call(
                f"delete {ref.uri}", bucket.delete_blob, ref.name, generation=ref.generation
            )

    async def ping(self) -> None:
        """Ready when the client holds credentials that yield a token. No API call: the
        runner's rights are on named buckets and listing buckets (``storage.buckets.list`` on
        the project) is not one of them, so a probe of the API would fail the instance."""

        def token() -> None:
            credentials = self.client._credentials
            if not credentials.valid:
                credentials.refresh(AuthRequest())

        await self._call("ping storage", token)

    async def close(self) -> None:
        self.client.close()


def _info(blob: Any) -> ObjectInfo:
    return ObjectInfo(
        ref=ObjectRef(blob.bucket.name, blob.name, blob.generation),
        size=int(blob.size or 0),
        content_type=blob.content_type,
        content_encoding=blob.content_encoding,
        md5_base64=blob.md5_hash,
        crc32c_base64=blob.crc32c,
        updated=blob.updated,
    )
