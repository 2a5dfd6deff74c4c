"""The whole-object checksum extract verifies: the event's CRC32C, or its MD5 when it has none.

Cloud Storage gives every object a CRC32C (composite objects have no MD5 at all), and
google-crc32c computes it with the CPU's CRC instruction: about 4.7 GB/s on these machines
against 0.46 GB/s for MD5, which had cost a fifth of the pipeline's CPU. google-crc32c is a
checksum library (no client, no I/O), so the pure core may use it.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, cast

import google_crc32c

from service.models import ObjectInfo


class Digest(Protocol):
    def update(self, data: bytes, /) -> object: ...

    def digest(self) -> bytes: ...


# google-crc32c's Checksum is hashlib-shaped but unannotated.
new_crc32c = cast(Callable[[], Digest], google_crc32c.Checksum)


@dataclass(frozen=True)
class ExpectedChecksum:
    kind: str  # "CRC32C" or "MD5"
    base64: str  # as Cloud Storage reports it: base64 of the big-endian digest

    @property
    def fast(self) -> bool:
        """Fast enough to run inline; MD5 is better hashed in a thread beside the stages."""
        return self.kind == "CRC32C"

    def start(self) -> Digest:
        if self.kind == "CRC32C":
            return new_crc32c()
        return hashlib.md5(usedforsecurity=False)

    def matches(self, digest: Digest) -> bool:
        return base64.b64encode(digest.digest()).decode() == self.base64


def expected_checksum(info: ObjectInfo) -> ExpectedChecksum | None:
    if info.crc32c_base64:
        return ExpectedChecksum("CRC32C", info.crc32c_base64)
    if info.md5_base64:
        return ExpectedChecksum("MD5", info.md5_base64)
    return None


def crc32c_base64(data: bytes) -> str:
    """The CRC32C Cloud Storage would report for these bytes."""
    return _base64_digest(new_crc32c(), data)


def md5_base64(data: bytes) -> str:
    """The md5Hash Cloud Storage would report for these bytes."""
    return _base64_digest(hashlib.md5(usedforsecurity=False), data)


def _base64_digest(digest: Digest, data: bytes) -> str:
    digest.update(data)
    return base64.b64encode(digest.digest()).decode()
