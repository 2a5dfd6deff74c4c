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
"""

from __future__ import annotations

import argparse
import functools
import sys
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
    # Imported only now: the patches above must be in place first.
    from local_bigquery import cli  # type: ignore[import-not-found, unused-ignore]

    sys.stdout.flush()
    cli.main(rest)


if __name__ == "__main__":
    main()
