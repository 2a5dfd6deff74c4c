"""Run the local-bigquery server with the launch-time patches it needs here.

Runs under the BigQuery emulator's own Python 3.13 venv (``.cache/bqemu/venv``, made by
``scripts/setup-emulators``), never under the project's Python, and imports nothing from the
project. Usage (the arguments after the launcher's own are local-bigquery's CLI)::

    .cache/bqemu/venv/bin/python tests/emulators/bq_launcher.py \\
        [--extension-dir DIR] serve --host 127.0.0.1 --port P --grpc-port G \\
        --project test --data-dir DIR

Patches, applied in memory (site-packages is left untouched):

1. ``duckdb.connect``: the ``TimeZone`` config option is dropped from ``config=`` and applied
   with ``SET TimeZone`` once connected (as a connect option DuckDB tries to autoload ICU first,
   which fails offline); every connection gets ``extension_directory`` = our cache folder and
   ``autoinstall_known_extensions = false``, so DuckDB never tries to download anything.
2. ``local_bigquery.engine.database.objects``: ``duckdb_tables().estimated_size`` can be NULL;
   it is reported as 0.
3. Its bookkeeping writes (``jobs.store`` and ``catalog.metadata``: every job is saved three
   times, PENDING, RUNNING, DONE) are ``INSERT OR REPLACE`` into its own DuckDB tables. DuckDB
   1.4 runs that as a MERGE whose update half fails once a table passes a 2,048-row vector
   (``FATAL Error: "Unaligned fetch in validity and main column data for update"``), and the
   fatal error invalidates the database for good: every later call is answered 400. Seen after
   ~1,800 to 1,950 load jobs in ``bench/scale.py --files 2000``; a plain UPDATE from four threads
   fails the same way within a few hundred rows. Each such write is made a DELETE of the key and
   a plain INSERT in one transaction instead, which never takes the update path, one at a time.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import re
import sys
import threading
from pathlib import Path
from typing import Any

_DEFAULT_EXT_DIR = Path(__file__).resolve().parents[2] / ".cache" / "bqemu" / "duckdb-extensions"


def _patch_duckdb(extension_dir: Path) -> None:
    import duckdb

    original = duckdb.connect
    if getattr(original, "_bqemu_patched", False):
        return

    @functools.wraps(original)
    def connect(*args: Any, **kwargs: Any) -> Any:
        config = dict(kwargs.pop("config", None) or {})
        timezone = None
        for key in list(config):
            if key.lower() == "timezone":
                timezone = config.pop(key)
        config.setdefault("extension_directory", str(extension_dir))
        config.setdefault("autoinstall_known_extensions", False)
        kwargs["config"] = config
        con = original(*args, **kwargs)
        if timezone is not None:
            con.execute("SET TimeZone = " + "'" + str(timezone).replace("'", "''") + "'")
        return con

    connect._bqemu_patched = True  # type: ignore[attr-defined]
    duckdb.connect = connect


def _patch_objects() -> None:
    from local_bigquery.engine import (  # type: ignore[import-not-found, unused-ignore]
        database,
    )

    original = database.objects
    if getattr(original, "_bqemu_patched", False):
        return

    @functools.wraps(original)
    def objects(*args: Any, **kwargs: Any) -> list[tuple[str, str, int]]:
        return [
            (name, kind, 0 if size is None else size)
            for name, kind, size in original(*args, **kwargs)
        ]

    objects._bqemu_patched = True  # type: ignore[attr-defined]
    database.objects = objects


# The upserts of local_bigquery's bookkeeping: table and optional column list.
_UPSERT = re.compile(r"\s*INSERT OR REPLACE INTO (emulator\.\w+)\s*(?:\(([^)]*)\))?\s*VALUES", re.I)
# Columns of emulator.jobs in table order (its INSERT names none), and its primary key.
_JOB_COLUMNS = ("project_id", "job_id", "parent_job_id", "state", "creation_time", "resource")
_JOB_KEY = ("project_id", "job_id")
# One such write at a time (concurrent ones conflict on the keys they delete and insert), and
# how often one is tried when it still conflicts with a reader.
_UPSERTING = threading.Lock()
_UPSERT_ATTEMPTS = 3


def _replacing(database: Any, original: Any) -> Any:
    """``execute`` that turns an ``INSERT OR REPLACE`` into DELETE + INSERT in one transaction."""

    @functools.wraps(original)
    def execute(sql: str, params: list[Any] | None = None) -> Any:
        match = _UPSERT.match(sql)
        if match is None or params is None:
            return original(sql, params)
        table, listed = match.groups()
        kind = table.split(".", 1)[1]
        if kind == "jobs":
            columns, key = list(_JOB_COLUMNS), _JOB_KEY
        elif kind in database.RESOURCES:
            key = database.RESOURCES[kind]
            columns = [c.strip() for c in listed.split(",")] if listed else [*key, "resource"]
        else:
            return original(sql, params)
        where = " AND ".join(f"{k} = ?" for k in key)
        keys = [params[columns.index(k)] for k in key]
        insert = re.sub(r"(?i)INSERT OR REPLACE INTO", "INSERT INTO", sql, count=1)
        for attempt in range(_UPSERT_ATTEMPTS):
            with _UPSERTING, database.cursor() as cur:
                cur.execute("BEGIN TRANSACTION")
                try:
                    cur.execute(f"DELETE FROM {table} WHERE {where}", keys)
                    cur.execute(insert, params)
                    cur.execute("COMMIT")
                    return None
                except Exception as exc:
                    with contextlib.suppress(Exception):  # a failed COMMIT has ended it already
                        cur.execute("ROLLBACK")
                    # A reader's older snapshot can still hold the deleted key: try again.
                    if "conflict" not in str(exc) or attempt == _UPSERT_ATTEMPTS - 1:
                        raise
        return None

    execute._bqemu_patched = True  # type: ignore[attr-defined]
    return execute


def _patch_upserts() -> None:
    from local_bigquery.catalog import (  # type: ignore[import-not-found, unused-ignore]
        metadata,
    )
    from local_bigquery.engine import (  # type: ignore[import-not-found, unused-ignore]
        database,
    )
    from local_bigquery.jobs import store  # type: ignore[import-not-found, unused-ignore]

    for module in (store, metadata):  # each imported ``execute`` by name
        if not getattr(module.execute, "_bqemu_patched", False):
            module.execute = _replacing(database, module.execute)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--extension-dir", type=Path, default=_DEFAULT_EXT_DIR)
    ours, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    extension_dir: Path = ours.extension_dir
    if not any(extension_dir.glob("v*/*/ducklake.duckdb_extension")):
        sys.exit(
            f"bq_launcher: no DuckDB ducklake extension under {extension_dir}: "
            "run scripts/setup-emulators"
        )
    _patch_duckdb(extension_dir)
    _patch_objects()
    _patch_upserts()
    # Imported only now: the patches above must be in place first.
    from local_bigquery import cli  # type: ignore[import-not-found, unused-ignore]

    sys.stdout.flush()
    cli.main(rest)


if __name__ == "__main__":
    main()
