"""What identifies one generation's bytes, and whether a new generation repeats a loaded one.

Cloud Storage gives every write a new generation, so a file uploaded again unchanged arrives as
a new unit; its checksums tell that its bytes were loaded already. Pure: the ledger's record of
the earlier generation and the event's object metadata in, a verdict out.
"""

from __future__ import annotations

from service.models import LedgerRecord, ObjectInfo


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
