"""Whether a new generation repeats the bytes of a loaded one, by its checksums."""

from __future__ import annotations

from dataclasses import replace

import pytest

from service.content import fingerprint, same_content
from service.models import LedgerRecord, ObjectInfo, ObjectRef
from tests.test_codec import RECORD

# A completed record of the earlier generation: MD5 M1 (its fingerprint), CRC32C C1.
EARLIER = replace(RECORD, fingerprint="md5:M1", crc32c="C1")


def arriving(md5: str | None, crc32c: str | None) -> ObjectInfo:
    return ObjectInfo(ObjectRef("landing", "a.csv", 2), 10, md5_base64=md5, crc32c_base64=crc32c)


@pytest.mark.parametrize(
    ("earlier", "md5", "crc32c", "same"),
    [
        (EARLIER, "M1", "C1", True),
        (EARLIER, "M1", None, True),
        (EARLIER, None, "C1", True),  # a composite upload of the same bytes: no MD5
        (EARLIER, "M2", "C1", False),  # MD5 decides when both have one
        (EARLIER, None, "C2", False),
        (EARLIER, None, None, False),  # a thin event: nothing to compare
        (replace(EARLIER, fingerprint="crc32c:C1", crc32c=None), "M1", "C1", True),
        (replace(EARLIER, crc32c=None), None, "C1", False),
        (replace(EARLIER, fingerprint="generation:1", crc32c=None), "M1", "C1", False),
    ],
)
def test_same_content_by_md5_else_crc32c(
    earlier: LedgerRecord, md5: str | None, crc32c: str | None, same: bool
) -> None:
    assert same_content(earlier, arriving(md5, crc32c)) is same


def test_the_fingerprint_prefers_md5() -> None:
    assert fingerprint(arriving("M", "C")) == "md5:M"
    assert fingerprint(arriving(None, "C")) == "crc32c:C"
    assert fingerprint(arriving(None, None)) == "generation:2"
