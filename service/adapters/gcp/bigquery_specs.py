"""How the service's tables, schemas, loads, job ids and peeks are spelled for BigQuery.

Pure translations (no calls): service/adapters/gcp/bigquery.py makes the calls with them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from google.cloud import bigquery
from google.cloud.bigquery.format_options import ParquetOptions

from service.bigquery_types import canonical, googlesql
from service.models import Column, RowFilter, TableSpec, UriSource
from service.peek import checked_filters
from service.schema_changes import SchemaChange

# What a job id may not hold: BigQuery allows letters, digits, "_" and "-", 1,024 at most
# (https://cloud.google.com/bigquery/docs/reference/rest/v2/JobReference).
NOT_IN_JOB_ID = re.compile(r"[^A-Za-z0-9_-]")
# What a table id may not hold (BigQuery: letters, digits and "_").
NOT_IN_TABLE_ID = re.compile(r"[^A-Za-z0-9_]")
# A table a peek may name: DATASET.TABLE, nothing that could end the quoted reference.
TABLE_NAME = re.compile(r"[A-Za-z0-9_]+\.[^`.\\]+")
# Most bytes one filtered peek may bill (a query scans whole columns, whatever its LIMIT): 1 GB.
PEEK_MAX_BYTES_BILLED = 10**9
# Longest job id BigQuery accepts; the retry suffixes (_r1...) and _stage are kept inside it.
MAX_JOB_ID = 1024 - len("_stage_r9")


def bigquery_job_id(job_id: str) -> str:
    """The unit's job id as BigQuery accepts it: a pipeline named ``orders.v2`` gives
    ``orders_v2``. The same id always gives the same job id, so adoption still works."""
    return NOT_IN_JOB_ID.sub("_", job_id)[:MAX_JOB_ID]


def staging_table_name(table: TableSpec, job_id: str) -> str:
    """The staging table of one partition replacement: named after its job, in its dataset."""
    return f"{table.dataset}._ingest_stage_{NOT_IN_TABLE_ID.sub('_', job_id)}"[:1024]


def schema_field(c: Column) -> bigquery.SchemaField:
    fields = tuple(schema_field(f) for f in c.fields)
    if c.description:
        return bigquery.SchemaField(
            c.name, c.type, mode=c.mode, description=c.description, fields=fields
        )
    return bigquery.SchemaField(c.name, c.type, mode=c.mode, fields=fields)


def peek_query(
    found: bigquery.Table, where: Sequence[RowFilter], limit: int
) -> tuple[str, bigquery.QueryJobConfig]:
    """The query of a filtered peek: checked, backquoted column names, one STRING parameter per
    value cast to the column's type (the type is the table's, not the caller's)."""
    types = {f.name: f.field_type for f in found.schema}
    checked = checked_filters(found.table_id, where, types)
    conditions = [
        f"`{f.column}` {f.operator} CAST(@v{i} AS {googlesql(types[f.column])})"
        for i, f in enumerate(checked)
    ]
    params = [
        bigquery.ScalarQueryParameter(f"v{i}", "STRING", f.value) for i, f in enumerate(where)
    ]
    params.append(bigquery.ScalarQueryParameter("limit", "INT64", limit))
    table = f"{found.project}.{found.dataset_id}.{found.table_id}"
    sql = f"SELECT * FROM `{table}` WHERE {' AND '.join(conditions)} LIMIT @limit"
    config = bigquery.QueryJobConfig(
        query_parameters=params, maximum_bytes_billed=PEEK_MAX_BYTES_BILLED
    )
    return sql, config


def table_schema(table: TableSpec) -> list[bigquery.SchemaField]:
    return [schema_field(c) for c in table.columns]


def spelled(field: Any) -> str:
    """A table field's type, nested fields included, as one comparable text."""
    kind = canonical(field.field_type)
    if not field.fields:
        return kind
    inner = ", ".join(
        f"{f.name} {spelled(f)} {(f.mode or 'NULLABLE').upper()}" for f in field.fields
    )
    return f"{kind}<{inner}>"


def spelled_column(column: Column) -> str:
    return spelled(schema_field(column))


def update_options(change: SchemaChange) -> list[str]:
    options = []
    if change.added:
        options.append(bigquery.SchemaUpdateOption.ALLOW_FIELD_ADDITION)
    if change.relaxed:
        options.append(bigquery.SchemaUpdateOption.ALLOW_FIELD_RELAXATION)
    return options


def evolved(fields: list[Any], change: SchemaChange) -> list[Any]:
    """The table's fields with the change applied: relaxed in place, added at the end."""
    relaxed = [
        bigquery.SchemaField.from_api_repr({**f.to_api_repr(), "mode": "NULLABLE"})
        if f.name in change.relaxed
        else f
        for f in fields
    ]
    return relaxed + [schema_field(c) for c in change.added]


def load_config(table: TableSpec, source_format: str) -> bigquery.LoadJobConfig:
    config = bigquery.LoadJobConfig(
        source_format=source_format,
        schema=table_schema(table),
        create_disposition=bigquery.CreateDisposition.CREATE_IF_NEEDED,
        write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
    )
    if table.partition_field:
        config.time_partitioning = bigquery.TimePartitioning(field=table.partition_field)
    if table.clustering:
        config.clustering_fields = list(table.clustering)
    if source_format == bigquery.SourceFormat.PARQUET:
        # A Parquet LIST (what Arrow writes for a REPEATED column) loads as a repeated field
        # of its elements, not as a RECORD holding a "list" of "element"s.
        options = ParquetOptions()
        options.enable_list_inference = True
        config.parquet_options = options
    return config


def describe_source(config: bigquery.LoadJobConfig, source: UriSource) -> None:
    """CSV options for a load from gs://; bad rows fail the job (the service then streams)."""
    config.max_bad_records = 0
    if source.format != bigquery.SourceFormat.CSV:
        return
    config.field_delimiter = source.field_delimiter
    config.quote_character = source.quote_character
    config.skip_leading_rows = source.skip_leading_rows
    config.encoding = source.encoding
    config.allow_quoted_newlines = source.allow_quoted_newlines
    if source.null_marker is not None:
        config.null_marker = source.null_marker
