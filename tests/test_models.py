"""service/models.py: the unit string reads back into the unit it was printed from."""

from __future__ import annotations

import pytest

from service.models import UnitKey


def test_a_printed_unit_parses_back() -> None:
    key = UnitKey("orders", "landing", "orders/a#b:c.csv", 12)
    assert UnitKey.parse(f"  {key}\n") == key


@pytest.mark.parametrize(
    "text", ["", "orders", "orders:gs://landing/a.csv", "orders:s3://b/a.csv#1", "a:gs://b/#1"]
)
def test_other_text_is_no_unit(text: str) -> None:
    assert UnitKey.parse(text) is None
