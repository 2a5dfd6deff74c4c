"""What identifies one generation's bytes, and whether a new generation repeats a loaded one.

Cloud Storage gives every write a new generation, so a file uploaded again unchanged arrives as
a new unit; its checksums tell that its bytes were loaded already. The comparisons are pure: the
ledger's record of the earlier generation and the event's object metadata in, a verdict out.
Two ask the object store (the port) about the stored generation itself: whether its checksum is
the one an event gives, and what a thin event left out.
"""

from __future__ import annotations

from service.errors import PermanentError
from service.models import LedgerRecord, ObjectInfo, ObjectRef
from service.ports import ObjectStore


def fingerprint(info: ObjectInfo) -> str:
    """What identifies the content of one generation, from what the event tells us."""
    if info.md5_base64:
        return f"md5:{info.md5_base64}"
    if info.crc32c_base64:
        return f"crc32c:{info.crc32c_base64}"
    return f"generation:{info.ref.generation}"


def same_content(earlier: LedgerRecord, info: ObjectInfo) -> bool:
    """The object's bytes are those of the ``earlier`` generation's record.

    MD5 decides when both sides have one (a differing MD5 is other content, whatever the
    CRC32C says: 32 bits collide far sooner); else CRC32C, when both have one (composite
    objects have no MD5). Without a checksum on either side nothing is the same.
    """
    kind, _, value = earlier.fingerprint.partition(":")
    earlier_md5 = value if kind == "md5" else None
    earlier_crc32c = earlier.crc32c or (value if kind == "crc32c" else None)
    if earlier_md5 and info.md5_base64:
        return earlier_md5 == info.md5_base64
    return bool(earlier_crc32c and info.crc32c_base64 and earlier_crc32c == info.crc32c_base64)


def same_content_reason(generation: int | None) -> str:
    return f"same content as generation {generation}"


async def object_agrees(store: ObjectStore, info: ObjectInfo) -> bool:
    """The stored generation's own checksum is the one this event gives (the judge when
    two events of one generation disagree). A missing object agrees with no event."""
    try:
        stored = await store.stat(info.ref)
    except PermanentError:
        return False
    kind, _, value = fingerprint(info).partition(":")
    own = {"md5": stored.md5_base64, "crc32c": stored.crc32c_base64}.get(kind)
    return own is not None and own == value


async def filled_in(store: ObjectStore, info: ObjectInfo) -> ObjectInfo:
    """Fill in what the event left out (size, encoding) from the store; events may be thin."""
    if info.size and info.content_type is not None:
        return info
    stored = await store.stat(ObjectRef(info.ref.bucket, info.ref.name, info.ref.generation))
    return ObjectInfo(
        ref=info.ref,
        size=stored.size,
        content_type=info.content_type or stored.content_type,
        content_encoding=info.content_encoding or stored.content_encoding,
        md5_base64=info.md5_base64 or stored.md5_base64,
        crc32c_base64=info.crc32c_base64 or stored.crc32c_base64,
        updated=info.updated or stored.updated,
    )
