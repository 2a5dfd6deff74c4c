"""spool_budget: the bytes of temporary files all units of an instance may hold together."""

from __future__ import annotations

import pytest

from service.errors import PermanentError, TransientError
from service.pipeline.spool_budget import MIB, SpoolBudget


def test_a_unit_that_alone_outgrows_the_budget_fails_for_good() -> None:
    budget = SpoolBudget(4 * MIB)
    unit = budget.account()
    unit.take(3 * MIB, "the validated rows")
    with pytest.raises(PermanentError) as caught:
        unit.take(2 * MIB, "the validated rows")
    assert str(caught.value).startswith(
        "the validated rows needs more than 5.0 MiB of spool, the instance allows 4.0 MiB "
        "(INGEST_SPOOL_MAX_BYTES;"
    )
    assert (budget.used, unit.held) == (3 * MIB, 3 * MIB)  # the refused bytes were not taken


def test_a_unit_that_finds_the_budget_held_by_others_is_retried() -> None:
    budget = SpoolBudget(4 * MIB)
    other, unit = budget.account(), budget.account()
    other.take(3 * MIB, "x")
    with pytest.raises(TransientError, match=r"3\.0 MiB of 4\.0 MiB held by other units"):
        unit.take(2 * MIB, "the Parquet file")
    other.release_all()
    unit.take(2 * MIB, "the Parquet file")
    assert budget.peak == 3 * MIB and budget.used == 2 * MIB


def test_a_size_known_up_front_is_checked_before_anything_is_read() -> None:
    budget = SpoolBudget(MIB)
    budget.fits(MIB, "the Parquet file")
    with pytest.raises(PermanentError, match=r"the Parquet file needs 2\.0 MiB of spool"):
        budget.fits(2 * MIB, "the Parquet file")
    assert budget.used == 0
