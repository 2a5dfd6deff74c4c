"""load: the warehouse loads a unit's spooled Parquet file, once.

The job id comes from the unit and the pipeline's version, so a retried load (a redelivery after
a crash) is adopted by the warehouse instead of inserting the rows again.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from service.models import LoadResult, TableSpec
from service.pipeline.context import UnitContext
from service.ports import Warehouse


async def load(
    warehouse: Warehouse, ctx: UnitContext, path: Path, table: TableSpec, day: date | None
) -> LoadResult:
    partition = day.isoformat() if day is not None else None
    return await warehouse.load_parquet(table, path, ctx.job_id, replace_partition=partition)
