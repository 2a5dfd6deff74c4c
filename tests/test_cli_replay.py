"""``ingest replay``: in-process, over HTTP to a real served app, dry runs, and every error path."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.adapters.gcp.gcs import GcsObjectStore
from service.models import UnitState
from service.recording import load_requests, to_json
from service.samples import (
    object_resource,
    scheduler_push,
    storage_cloudevent,
    storage_notification_push,
    storage_structured_cloudevent,
)
from tests.conftest import EXAMPLES
from tests.emulator_fixtures import Emulators
from tests.serving import Server, free_port
from tests.test_cli_common import (
    CUSTOMERS,
    ORDERS_20,
    ORDERS_21,
    Workspace,
    error_line,
    json_lines,
    make_workspace,
    run_cli,
    serving,
)

EVENTS = EXAMPLES / "events"


@pytest.fixture
def space(tmp_path: Path) -> Workspace:
    return make_workspace(tmp_path)


def replay(space: Workspace, *args: str, stdin: str | None = None, **env: str) -> tuple[int, str]:
    result = run_cli(["replay", *args], space.env(**env), stdin)
    return result.exit_code, result.output


def test_in_process_loads_then_answers_duplicates(space: Workspace) -> None:
    space.seed()
    first = run_cli(["replay", str(EVENTS), "--in-process", "--json"], space.env())
    assert first.exit_code == 0, first.output
    rows = json_lines(first.stdout)
    assert [(r["event_id"], r["status"], r["rows_loaded"]) for r in rows] == [
        ("demo-0001", "loaded", 6),
        ("demo-0002", "loaded", 5),
        ("demo-0003", "loaded", 6),
    ]
    assert rows[2]["rows_quarantined"] == 2
    assert "3 events" in first.stderr and "rows loaded 17, quarantined 2" in first.stderr
    again = run_cli(["replay", str(EVENTS), "--in-process", "--json"], space.env())
    assert again.exit_code == 0
    assert {r["status"] for r in json_lines(again.stdout)} == {"duplicate"}
    assert len(space.records(UnitState.COMPLETED)) == 3


def test_the_table_shows_each_event_and_a_summary(space: Workspace) -> None:
    space.seed()
    code, output = replay(space, str(ORDERS_21), "--in-process")
    assert code == 0
    assert "demo-0003" in output and "loaded" in output
    assert "1 event in" in output and "rows loaded 6, quarantined 2" in output


def test_force_re_runs_finished_units_in_process(space: Workspace) -> None:
    space.seed()
    assert replay(space, str(ORDERS_20), "--in-process")[0] == 0
    result = run_cli(["replay", str(ORDERS_20), "--in-process", "--force", "--json"], space.env())
    assert result.exit_code == 0
    [row] = json_lines(result.stdout)
    assert (row["status"], row["rows_loaded"]) == ("loaded", 5)
    [record] = space.records()
    assert (record.state, record.attempt) == (UnitState.COMPLETED, 2)


def test_dry_run_decodes_and_runs_nothing(space: Workspace) -> None:
    space.seed()
    result = run_cli(["replay", str(EVENTS), "--dry-run", "--json"], space.env())
    assert result.exit_code == 0, result.output
    rows = json_lines(result.stdout)
    assert [r["status"] for r in rows] == ["would-run"] * 3
    assert rows[1]["reason"] == "orders:gs://landing/orders/2026-11-20.csv#1"
    assert space.records() == []


def test_dry_run_says_what_would_be_ignored_or_refused(space: Workspace, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    unmatched = storage_structured_cloudevent(object_resource("landing", "elsewhere/a.csv", 3))
    lines = [
        json.dumps({"headers": unmatched.headers, "body": unmatched.body.decode()}),
        json.dumps(json.loads(scheduler_push("nope").body)),
        json.dumps({"headers": {"Content-Type": "application/json"}, "body": "{not json"}),
    ]
    events.write_text("\n".join(lines) + "\n")
    result = run_cli(["replay", str(events), "--dry-run", "--json"], space.env())
    rows = json_lines(result.stdout)
    assert [r["status"] for r in rows] == ["would-ignore", "would-ignore", "bad_request"]
    assert "no pipeline matches gs://landing/elsewhere/a.csv" in rows[0]["reason"]
    assert rows[1]["reason"] == "unknown pipeline nope"
    assert [r["source"] for r in rows] == [f"{events}:{n}" for n in (1, 2, 3)]
    assert result.exit_code == 1
    assert error_line(result) == "Error: 1 of 3 events did not succeed"


def test_every_delivery_shape_in_one_jsonl_file(space: Workspace, tmp_path: Path) -> None:
    store = space.seed()
    data = (EXAMPLES / "data" / "landing" / "orders" / "2026-11-20.csv").read_bytes()
    store.put("landing", "orders/2026-11-22.csv", data.replace(b"2026-11-20", b"2026-11-22"))
    structured = storage_structured_cloudevent(
        object_resource("landing", "orders/2026-11-22.csv", 1)
    )
    notification = storage_notification_push(object_resource("landing", "orders/2026-11-21.csv", 1))
    [recorded] = load_requests(CUSTOMERS)
    lines = [
        structured.body.decode(),  # a structured CloudEvent as a plain JSON line
        notification.body.decode(),  # a push envelope as a plain JSON line
        json.dumps({"headers": recorded.headers, "body": recorded.body.decode()}),
        scheduler_push("orders").body.decode(),  # a sweep: finds all three order files
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = run_cli(["replay", str(path), "--in-process", "--json", "-c", "1"], space.env())
    assert result.exit_code == 0, result.output
    rows = json_lines(result.stdout)
    # The sweep finds the two files the lines above loaded, and publishes the third: it runs
    # from the in-process work queue before the replay ends.
    assert [r["status"] for r in rows] == ["loaded", "loaded", "loaded", "published"]
    assert rows[3]["fanout"] == {"objects": 3, "published": 1}
    assert len(space.records(UnitState.COMPLETED)) == 4


def test_stdin_takes_what_ingest_event_prints(space: Workspace) -> None:
    space.seed()
    printed = run_cli(
        ["event", "storage", "--bucket", "landing", "--name", "orders/2026-11-20.csv"],
        space.env(),
    )
    assert printed.exit_code == 0
    result = run_cli(["replay", "-", "--in-process", "--json"], space.env(), printed.stdout)
    assert result.exit_code == 0, result.output
    [row] = json_lines(result.stdout)
    assert (row["source"], row["status"], row["rows_loaded"]) == ("<stdin>", "loaded", 5)


def test_a_failed_unit_makes_the_exit_code_non_zero(space: Workspace, tmp_path: Path) -> None:
    bad = b"customer_id,name,country,signed_up\n,no id,FR,\n"  # customers allow no bad row
    ref = space.seed().put("landing", "customers/bad.csv", bad, "text/csv")
    assert ref.generation is not None
    event = storage_cloudevent(object_resource("landing", ref.name, ref.generation, bad))
    path = tmp_path / "bad-customers.json"
    path.write_text(json.dumps(to_json(event.headers, event.body)))
    result = run_cli(["replay", str(path), "--in-process", "--json"], space.env())
    assert result.exit_code == 1
    [row] = json_lines(result.stdout)
    assert (row["status"], row["rows_quarantined"]) == ("failed", 1)
    assert row["reason"].startswith("1 of 1 rows bad, none allowed")
    assert error_line(result) == "Error: 1 of 1 events did not succeed"
    [record] = space.records(UnitState.FAILED)
    assert record.unit == "customers:gs://landing/customers/bad.csv#1"


def test_a_missing_file_is_one_line(space: Workspace, tmp_path: Path) -> None:
    result = run_cli(["replay", str(tmp_path / "nope.json"), "--in-process"], space.env())
    assert result.exit_code == 1
    assert error_line(result) == f"Error: {tmp_path / 'nope.json'}: no such file or folder"


def test_bad_json_names_the_file_and_line(space: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"message": {}}\n{"oops": \n')
    result = run_cli(["replay", str(path), "--in-process"], space.env())
    assert result.exit_code == 1
    assert error_line(result).startswith(f"Error: {path}:2: not valid JSON:")


def test_json_that_is_not_an_event_object_is_refused(space: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "numbers.json"
    path.write_text("[1, 2]")
    result = run_cli(["replay", str(path), "--dry-run"], space.env())
    assert result.exit_code == 1
    assert error_line(result) == f"Error: {path}[0]: not a JSON object"


def test_an_empty_folder_is_an_error(space: Workspace, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = run_cli(["replay", str(tmp_path / "empty"), "--in-process"], space.env())
    assert result.exit_code == 1
    assert "no events found" in error_line(result)


def test_an_unreachable_url_is_one_line(space: Workspace) -> None:
    url = f"http://127.0.0.1:{free_port()}/"  # bound then closed: nothing listens there
    result = run_cli(["replay", str(EVENTS), "--to", url], space.env())
    assert result.exit_code == 1
    assert error_line(result).startswith(f"Error: cannot reach {url}")


def test_no_retries_leaves_busy_events_failed(space: Workspace, tmp_path: Path) -> None:
    space.seed()
    [good] = load_requests(ORDERS_20)
    lines = [json.dumps(to_json({**good.headers, "ce-id": f"e{n}"}, good.body)) for n in range(8)]
    (tmp_path / "same-unit.jsonl").write_text("\n".join(lines))
    args = ["replay", str(tmp_path / "same-unit.jsonl"), "--in-process", "-c", "8", "--json"]
    result = run_cli([*args, "--retries", "0"], space.env())
    statuses = [r["status"] for r in json_lines(result.stdout)]
    assert statuses.count("loaded") == 1
    assert "busy" in statuses  # the other seven found the unit in progress (or done)
    assert result.exit_code == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give exactly one of --to URL"),
        (["--in-process", "--to", "http://127.0.0.1:9/"], "give exactly one of --to URL"),
        (["--to", "ftp://example/"], "is not an http(s) URL"),
        (["--to", "http://127.0.0.1:9/", "-H", "no-colon"], "is not 'NAME: VALUE'"),
        (["--in-process", "-c", "0"], "0 is not in the range"),
    ],
)
def test_usage_errors(space: Workspace, args: list[str], message: str) -> None:
    result = run_cli(["replay", str(ORDERS_20), *args], space.env())
    assert result.exit_code == 2
    assert message in result.output


def test_an_explicit_in_process_wins_over_the_url_variable(space: Workspace) -> None:
    space.seed()
    env = space.env(INGEST_REPLAY_URL=f"http://127.0.0.1:{free_port()}/")
    result = run_cli(["replay", str(ORDERS_20), "--in-process"], env)
    assert result.exit_code == 0, result.output


def test_markup_in_object_names_is_printed_literally(
    space: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the event column then shows just "odd.json"
    event = storage_structured_cloudevent(object_resource("landing", "x/[b]y[/b].csv", 1))
    (tmp_path / "odd.json").write_text(event.body.decode())
    code, output = replay(space, str(tmp_path / "odd.json"), "--dry-run")
    assert code == 0
    assert "odd.json" in output
    assert "no pipeline matches gs://landing/x/[b]y[/b].csv" in output


# Over HTTP: a real `ingest serve` process on a free local port.


@pytest.fixture
def served(space: Workspace) -> Iterator[Server]:
    space.seed()
    with serving(space, INGEST_ALLOW_FORCE="false") as server:
        yield server


@pytest.fixture
def served_with_force(space: Workspace) -> Iterator[Server]:
    space.seed()
    with serving(space, INGEST_ALLOW_FORCE="true") as server:
        yield server


def test_over_http_to_a_served_app(space: Workspace, served: Server) -> None:
    args = ["replay", str(EVENTS), "--to", f"{served.url}/", "--json", "-c", "2"]
    result = run_cli(args, space.env())
    assert result.exit_code == 0, result.output + served.output()
    rows = json_lines(result.stdout)
    assert [(r["http_status"], r["status"]) for r in rows] == [(200, "loaded")] * 3
    assert [r["event_id"] for r in rows] == ["demo-0001", "demo-0002", "demo-0003"]
    again = run_cli(args, space.env())
    assert {r["status"] for r in json_lines(again.stdout)} == {"duplicate"}


def test_force_over_http_is_refused_unless_the_service_allows_it(
    space: Workspace, served: Server
) -> None:
    url = f"{served.url}/"
    assert run_cli(["replay", str(ORDERS_20), "--to", url], space.env()).exit_code == 0
    result = run_cli(["replay", str(ORDERS_20), "--to", url, "--force", "--json"], space.env())
    assert result.exit_code == 1
    [row] = json_lines(result.stdout)
    assert (row["http_status"], row["status"]) == (403, "forbidden")
    assert "INGEST_ALLOW_FORCE" in row["reason"]
    [record] = space.records()
    assert record.attempt == 1  # nothing was re-run


def test_force_over_http_re_runs_when_the_service_allows_it(
    space: Workspace, served_with_force: Server
) -> None:
    url = f"{served_with_force.url}/"
    assert run_cli(["replay", str(ORDERS_20), "--to", url], space.env()).exit_code == 0
    result = run_cli(["replay", str(ORDERS_20), "--to", url, "--force", "--json"], space.env())
    assert result.exit_code == 0, result.output
    [row] = json_lines(result.stdout)
    assert (row["http_status"], row["status"], row["rows_loaded"]) == (200, "loaded", 5)
    [record] = space.records()
    assert (record.state, record.attempt) == (UnitState.COMPLETED, 2)


# The same commands on the GCP backends: fake-gcs-server, the Firestore and BigQuery emulators.


@pytest.mark.emulators
def test_the_commands_on_the_gcp_backends(
    emulators: Emulators, unique: str, space: Workspace
) -> None:
    text = space.pipelines.read_text().replace('"landing"', f'"{unique}"')
    space.pipelines.write_text(text.replace('"sales.', f'"{unique}.'))
    store = GcsObjectStore.from_settings(emulators.settings())
    store.client.create_bucket(unique)
    env = space.env(**emulators.environ(), INGEST_LEDGER_COLLECTION=unique)
    csv = EXAMPLES / "data" / "landing" / "orders" / "2026-11-20.csv"
    uploaded = run_cli(["upload", str(csv), f"gs://{unique}/orders/2026-11-20.csv"], env)
    assert uploaded.exit_code == 0, uploaded.output
    generation = int(uploaded.output.split()[-1])
    event = run_cli(
        ["event", "storage", "--bucket", unique, "--name", "orders/2026-11-20.csv"], env
    )
    assert event.exit_code == 0, event.output
    assert json.loads(event.stdout)["body"]["generation"] == str(generation)
    replayed = run_cli(["replay", "-", "--in-process", "--json"], env, event.stdout)
    assert replayed.exit_code == 0, replayed.output
    [row] = json_lines(replayed.stdout)
    assert (row["status"], row["rows_loaded"]) == ("loaded", 5)
    unit = f"orders:gs://{unique}/orders/2026-11-20.csv#{generation}"
    listed = run_cli(["ledger", "list", "--json"], env)
    assert [(u["unit"], u["state"]) for u in json.loads(listed.stdout)] == [(unit, "COMPLETED")]
    shown = run_cli(["ledger", "show", unit, "--json"], env)
    assert json.loads(shown.stdout)["rows_loaded"] == 5
    swept = run_cli(["sweep", "orders", "--json"], env)
    assert json.loads(swept.stdout)["units"] == {"duplicate": 1}
    tables = run_cli(["tables"], env)
    [line] = [line for line in tables.output.splitlines() if f"{unique}.orders" in line]
    assert line.split("│")[2].strip() == "5"


def test_a_long_run_lists_only_the_events_that_did_not_succeed(
    space: Workspace, tmp_path: Path
) -> None:
    space.seed()
    [good] = load_requests(ORDERS_20)
    lines = [
        json.dumps(to_json({**good.headers, "ce-id": f"bulk-{n}"}, good.body)) for n in range(120)
    ]
    lines.append(json.dumps({"headers": {"Content-Type": "application/json"}, "body": "[]"}))
    (tmp_path / "bulk.jsonl").write_text("\n".join(lines) + "\n")
    # Eight at once: events of one unit find it in progress (busy) and are sent again.
    args = ["replay", str(tmp_path / "bulk.jsonl"), "--in-process", "-c", "8"]
    result = run_cli(args, space.env())
    assert result.exit_code == 1
    assert "retrying" in result.stderr and "busy or unavailable events in 1 s" in result.stderr
    assert "the 1 of 121 events that did not succeed" in result.stdout
    assert "bulk-" not in result.stdout  # the 120 that succeeded are only counted
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.startswith("121 events in ")
    assert summary.endswith(
        "119 duplicate, 1 loaded, 1 bad_request; rows loaded 5, quarantined 0,"
        " already loaded by an earlier run 595"
    )
