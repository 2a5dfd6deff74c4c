"""``ingest check-config``: valid settings and pipelines are shown; anything wrong is one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_cli_common import Workspace, error_line, make_workspace, run_cli


@pytest.fixture
def space(tmp_path: Path) -> Workspace:
    return make_workspace(tmp_path)


def test_valid_configuration(space: Workspace) -> None:
    result = run_cli(["check-config"], space.env())
    assert result.exit_code == 0, result.output
    assert "INGEST_DATA_DIR" in result.output  # set, so listed; defaults are not
    assert "INGEST_CHUNK_BYTES" not in result.output
    assert "gs://landing/orders/*.csv*" in result.output and "sales.customers" in result.output
    assert "ok: settings valid (backend embedded), 2 pipelines" in result.output


def test_all_settings_as_json(space: Workspace) -> None:
    result = run_cli(["check-config", "--all", "--json"], space.env())
    assert result.exit_code == 0
    shown = json.loads(result.stdout)
    assert shown["settings"]["INGEST_CHUNK_BYTES"] == "1048576"
    assert shown["settings"]["INGEST_ALLOW_FORCE"] == "False"
    assert [p["name"] for p in shown["pipelines"]] == ["orders", "customers"]
    assert shown["pipelines"][0]["table"] == "sales.orders"


def test_a_bad_variable_is_named(space: Workspace) -> None:
    result = run_cli(["check-config"], space.env(INGEST_BACKEND="cloud"))
    assert result.exit_code == 1
    assert error_line(result).startswith("Error: INGEST_BACKEND='cloud' is invalid")


def test_gcp_needs_a_project(space: Workspace) -> None:
    result = run_cli(["check-config"], space.env(INGEST_BACKEND="gcp", INGEST_PROJECT=None))
    assert result.exit_code == 1
    assert error_line(result) == "Error: INGEST_PROJECT is required when INGEST_BACKEND=gcp"


def test_a_missing_pipelines_file(space: Workspace) -> None:
    result = run_cli(["check-config"], space.env(INGEST_PIPELINES=str(space.root / "no.toml")))
    assert result.exit_code == 1
    assert "pipelines file not found" in error_line(result)


def test_a_pipelines_path_that_is_a_directory(space: Workspace) -> None:
    result = run_cli(["check-config"], space.env(INGEST_PIPELINES=str(space.root)))
    assert result.exit_code == 1
    assert error_line(result).endswith(
        f"{space.root}: is a directory, not a pipelines file (set INGEST_PIPELINES)"
    )


def test_a_pipelines_file_that_is_not_utf8(space: Workspace) -> None:
    space.pipelines.write_bytes(space.pipelines.read_bytes() + "# caf\u00e9\n".encode("latin-1"))
    result = run_cli(["check-config"], space.env())
    assert result.exit_code == 1
    assert f"{space.pipelines}: pipelines file is not UTF-8 text" in error_line(result)


def test_an_empty_pipelines_file_is_refused(space: Workspace) -> None:
    space.pipelines.write_text("")
    result = run_cli(["check-config"], space.env())
    assert result.exit_code == 1
    assert f"{space.pipelines}: no pipelines" in error_line(result)


def test_a_bad_pipeline_names_the_file_pipeline_and_field(space: Workspace) -> None:
    space.pipelines.write_text(
        space.pipelines.read_text().replace('table = "sales.orders"', 'table = "orders"')
    )
    result = run_cli(["check-config"], space.env())
    assert result.exit_code == 1
    line = error_line(result)
    assert str(space.pipelines) in line and "orders" in line and "table" in line


def test_how_each_pipeline_loads_is_shown(space: Workspace) -> None:
    result = run_cli(["check-config"], space.env())
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())  # cells may wrap
    assert "csv, compression auto" in out
    assert "daily by order_date" in out and "customer_id" in out
    assert "over 25% of its rows bad" in out  # orders: max_ratio = 0.25
    assert "at the first bad row" in out  # customers: max_count = 0
    assert "append" in out and "undated: files of the last 3 days" in out
    assert "gs://landing/_quarantine/" in out


def test_how_each_pipeline_loads_as_json(space: Workspace) -> None:
    space.pipelines.write_text(
        space.pipelines.read_text().replace(
            'clustering = ["customer_id"]',
            'clustering = ["customer_id"]\nsweep_lookback_days = 5\ncompression = "gzip"',
        )
    )
    result = run_cli(["check-config", "--json"], space.env())
    assert result.exit_code == 0, result.output
    orders, customers = json.loads(result.stdout)["pipelines"]
    assert orders["partitioning"] == {"field": "order_date", "granularity": "DAY"}
    assert orders["clustering"] == ["customer_id"] and orders["write_mode"] == "append"
    assert (orders["format"], orders["compression"]) == ("csv", "gzip")
    assert orders["bad_rows"] == {
        "max_count": None,
        "max_ratio": 0.25,
        "quarantine": "gs://landing/_quarantine/",
    }
    assert orders["sweep"] == {"lookback_days": 5, "dated_prefix": False}
    assert customers["partitioning"] is None and customers["bad_rows"]["max_count"] == 0


def test_pipelines_sharing_files_are_a_warning(space: Workspace) -> None:
    # A second pipeline over the orders files into its own table: a fan-out, perhaps meant.
    copy = space.pipelines.read_text().split("[[pipelines]]")[1]
    copy = copy.replace('name = "orders"', 'name = "orders_raw"').replace(
        '"sales.orders"', '"sales.orders_raw"'
    )
    space.pipelines.write_text(space.pipelines.read_text() + "[[pipelines]]" + copy)
    result = run_cli(["check-config"], space.env())
    assert result.exit_code == 0, result.output
    assert (
        "warning: pipelines 'orders' and 'orders_raw' both match gs://landing/orders/x.csv:"
        " each loads it into its own table"
    ) in result.output
    shown = json.loads(run_cli(["check-config", "--json"], space.env()).stdout)
    assert shown["warnings"] == [
        "pipelines 'orders' and 'orders_raw' both match gs://landing/orders/x.csv:"
        " each loads it into its own table"
    ]


def test_a_typo_is_refused_naming_the_closest_key(space: Workspace) -> None:
    space.pipelines.write_text(space.pipelines.read_text().replace("max_ratio =", "max_ratoi ="))
    result = run_cli(["check-config"], space.env())
    assert result.exit_code == 1
    assert error_line(result).endswith(
        "pipeline 'orders': bad_rows.max_ratoi: unknown option, did you mean `max_ratio`?"
    )


def test_all_tries_each_backend(space: Workspace) -> None:
    space.data_dir.mkdir()
    result = run_cli(["check-config", "--all"], space.env())
    assert result.exit_code == 0, result.output
    assert [line for line in result.stdout.splitlines() if line.startswith("ok  ")] == [
        f"ok   data folder: {space.data_dir}",
        "ok   object store: answers",
        "ok   warehouse: answers",
        "ok   ledger: answers",
    ]
    assert "ok: settings valid" in result.output


def test_all_says_which_backend_fails(space: Workspace) -> None:
    space.data_dir.mkdir()
    (space.data_dir / "warehouse.duckdb").write_bytes(b"not a database" * 512)
    (space.data_dir / "ledger.sqlite3").write_bytes(b"not a database" * 512)
    result = run_cli(["check-config", "--all", "--json"], space.env())
    assert result.exit_code == 1
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["data folder"]["ok"] is True
    assert checks["backends"]["ok"] is False
    assert checks["backends"]["detail"].startswith(f"sqlite ledger {space.data_dir}")
    assert error_line(result) == "Error: 1 check(s) failed: backends"
    (space.data_dir / "ledger.sqlite3").unlink()
    again = run_cli(["check-config", "--all"], space.env())
    assert again.exit_code == 1
    [failed] = [line for line in again.stdout.splitlines() if line.startswith("FAIL")]
    assert failed.startswith("FAIL warehouse: duckdb: ")
    assert "\n" not in failed
    assert error_line(again) == "Error: 1 check(s) failed: warehouse"


def test_all_before_the_data_folder_exists(space: Workspace) -> None:
    result = run_cli(["check-config", "--all"], space.env())
    assert result.exit_code == 0
    assert f"ok   data folder: not made yet: {space.data_dir} (`ingest serve`" in result.stdout
    assert not space.data_dir.exists()


def test_all_tries_the_gcp_credentials(space: Workspace) -> None:
    from tests.test_cli_serve import NO_CREDENTIALS, run_ingest

    result = run_ingest(space, "check-config", "--all", INGEST_BACKEND="gcp", **NO_CREDENTIALS)
    assert result.returncode == 1
    [failed] = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert failed.startswith("FAIL credentials: no Google credentials found: run `gcloud auth")
    assert result.stderr.strip() == "Error: 1 check(s) failed: credentials"
