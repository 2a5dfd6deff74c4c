"""The pipelines file: parsed into typed pipelines, every error naming file, pipeline and field."""

from __future__ import annotations

import importlib
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from service.cli import main as cli
from service.errors import ConfigError
from service.pipeline.definition import BadRowPolicy, Pipeline, Transform
from service.pipeline.pipelines_file import ACCEPTED_KEYS, load_pipelines
from tests.conftest import EXAMPLES

SCHEMA = '[{name = "id", type = "INTEGER", mode = "REQUIRED"}, {name = "day", type = "DATE"}]'


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "pipelines.toml"
    path.write_text(body, encoding="utf-8")
    return path


def entry(extra: str = "", *, name: str = "p", schema: str = SCHEMA) -> str:
    return (
        f'[[pipelines]]\nname = "{name}"\nbucket = "bkt"\ntable = "ds.t"\n'
        f"schema = {schema}\n{extra}\n"
    )


def test_the_examples_load() -> None:
    found = load_pipelines(EXAMPLES / "pipelines.toml")
    orders = found.get("orders")
    assert orders is not None
    assert orders.table.partition_field == "order_date"
    assert orders.table.clustering == ("customer_id",)
    assert orders.transforms == (Transform("rename", "cust", to="customer_id"),)
    assert orders.csv.null_values == ("", "NULL")
    assert orders.bad_rows.max_ratio == 0.25
    assert orders.skip_same_content  # the default
    assert [c.name for c in orders.output_columns][-4:] == [
        "_source_uri",
        "_source_generation",
        "_event_id",
        "_ingested_at",
    ]


def test_every_option_is_read(tmp_path: Path) -> None:
    body = entry(
        """format = "csv"
prefix = "in/{date}/"
glob = "*.csv*"
compression = "gzip"
lineage = false
ignore_unknown_fields = true
skip_same_content = false
partition_field = "day"
clustering = ["id"]
write_mode = "replace_partition"
partition_date = "column"
partition_pattern = '(\\d{8})'
sweep_lookback_days = 7
load = "job"
[pipelines.csv]
delimiter = ";"
header = false
quote_char = ""
null_values = ["", "NA"]
encoding = "latin-1"
skip_rows = 2
allow_quoted_newlines = true
[pipelines.bad_rows]
max_count = 3
max_ratio = 0.1
quarantine = "gs://qbkt/bad/"
[[pipelines.transforms]]
op = "cast"
column = "day"
format = "%d/%m/%Y"
"""
    )
    [p] = load_pipelines(write(tmp_path, body)).pipelines
    assert (p.prefix, p.glob, p.compression, p.lineage) == ("in/{date}/", "*.csv*", "gzip", False)
    assert p.ignore_unknown_fields and not p.skip_same_content
    assert (p.table.partition_field, p.table.clustering) == ("day", ("id",))
    assert (p.write_mode, p.partition_date) == ("replace_partition", "column")
    assert (p.partition_pattern, p.sweep_lookback_days, p.load) == (r"(\d{8})", 7, "job")
    assert p.csv.delimiter == ";" and not p.csv.header and p.csv.quote_char == ""
    assert p.csv.null_values == ("", "NA") and p.csv.encoding == "latin-1"
    assert p.csv.skip_rows == 2 and p.csv.allow_quoted_newlines
    assert (p.bad_rows.max_count, p.bad_rows.max_ratio) == (3, 0.1)
    assert p.bad_rows.quarantine == "gs://qbkt/bad/"
    assert p.transforms == (Transform("cast", "day", format="%d/%m/%Y"),)
    # The file above gives every key the reader accepts (of transforms, those of a cast).
    given = tomllib.loads(body)
    [raw] = given["pipelines"]
    assert set(given) == ACCEPTED_KEYS[""]
    assert set(raw) == ACCEPTED_KEYS["pipelines"]
    assert set(raw["csv"]) == ACCEPTED_KEYS["pipelines.csv"]
    assert set(raw["bad_rows"]) == ACCEPTED_KEYS["pipelines.bad_rows"]


def test_a_schema_file_is_read_relative_to_the_pipelines_file(tmp_path: Path) -> None:
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "t.json").write_text('[{"name": "x", "type": "string"}]')
    [p] = load_pipelines(write(tmp_path, entry(schema='"schemas/t.json"'))).pipelines
    assert [(c.name, c.type, c.mode) for c in p.table.columns] == [("x", "STRING", "NULLABLE")]


@pytest.mark.parametrize(
    ("extra", "field", "message"),
    [
        ('format = "xml"', "format", "must be csv or ndjson or parquet"),
        ('compression = "zip"', "compression", "must be auto or gzip or none"),
        ('write_mode = "replace_partition"', "write_mode", "needs partition_field"),
        ('partition_field = "nope"', "partition_field", "is not a schema column"),
        ('partition_field = "id"', "partition_field", "DATE, DATETIME or TIMESTAMP"),
        ('clustering = ["zz"]', "clustering", "is not a schema column"),
        ('partition_pattern = "no group"', "partition_pattern", "exactly one group"),
        ("[pipelines.csv]\ndelimiter = ';;'", "csv.delimiter", "one character"),
        ('[pipelines.csv]\nencoding = "klingon"', "csv.encoding", "unknown encoding"),
        ("[pipelines.csv]\nheader = 1", "csv.header", "must be a bool"),
        ('[pipelines.csv]\nseparator = ","', "csv.separator", "unknown option"),
        ("[pipelines.bad_rows]\nmax_ratio = 2", "bad_rows.max_ratio", "between 0 and 1"),
        ("[pipelines.bad_rows]\nmax_count = -1", "bad_rows.max_count", "non-negative"),
        ('[pipelines.bad_rows]\nquarantine = "/tmp"', "bad_rows.quarantine", "gs://"),
        ('[[pipelines.transforms]]\nop = "explode"', "transforms[0].op", "must be one of"),
        ('[[pipelines.transforms]]\nop = "rename"\ncolumn = "a"', "transforms[0].to", "required"),
        (
            '[[pipelines.transforms]]\nop = "rename"\ncolumn = "a"\nto = "b"',
            "transforms[0].to",
            "'b' is not a schema column",
        ),
        (
            '[[pipelines.transforms]]\nop = "from_path"\ncolumn = "day"\npattern = "("',
            "transforms[0].pattern",
            "bad regex",
        ),
        (
            '[[pipelines.transforms]]\nop = "cast"\ncolumn = "id"\nformat = "%Y"',
            "transforms[0].format",
            "DATE, DATETIME and TIMESTAMP",
        ),
    ],
)
def test_errors_name_the_file_the_pipeline_and_the_field(
    tmp_path: Path, extra: str, field: str, message: str
) -> None:
    path = write(tmp_path, entry(extra))
    with pytest.raises(ConfigError) as caught:
        load_pipelines(path)
    text = str(caught.value)
    assert text.startswith(f"{path}: pipeline 'p': {field}: "), text
    assert message in text


@pytest.mark.parametrize(
    ("schema", "field"),
    [
        ('"missing.json"', "schema"),
        ("[]", "schema"),
        ('[{name = "x"}]', "schema[0]"),
        ('[{name = "x", type = "GEOMETRY"}]', "schema[0].type"),
        ('[{name = "x", type = "STRING", mode = "ARRAY"}]', "schema[0].mode"),
        ('[{name = "x", type = "STRING"}, {name = "x", type = "STRING"}]', "schema"),
    ],
)
def test_schema_errors_name_the_field(tmp_path: Path, schema: str, field: str) -> None:
    path = write(tmp_path, entry(schema=schema))
    with pytest.raises(ConfigError) as caught:
        load_pipelines(path)
    assert f"{path}: pipeline 'p': {field}: " in str(caught.value)


def test_a_cast_reads_several_formats_and_decimal_commas(tmp_path: Path) -> None:
    schema = '[{name = "day", type = "DATE"}, {name = "amount", type = "NUMERIC"}]'
    transforms = (
        '[[pipelines.transforms]]\nop = "cast"\ncolumn = "day"\n'
        'formats = ["%Y-%m-%d", "%d/%m/%Y"]\n'
        '[[pipelines.transforms]]\nop = "cast"\ncolumn = "amount"\ndecimal_separator = ","'
    )
    [p] = load_pipelines(write(tmp_path, entry(transforms, schema=schema))).pipelines
    assert p.transforms[0].all_formats == ("%Y-%m-%d", "%d/%m/%Y")
    assert p.transforms[1].decimal_separator == ","


@pytest.mark.parametrize(
    ("cast", "field"),
    [
        ('column = "day"', "transforms[0]"),
        ('column = "day"\nformats = "%Y"', "transforms[0].formats"),
        ('column = "day"\ndecimal_separator = ","', "transforms[0].decimal_separator"),
        ('column = "id"\ndecimal_separator = ","', "transforms[0].decimal_separator"),
    ],
)
def test_a_cast_that_says_nothing_or_the_wrong_thing_is_refused(
    tmp_path: Path, cast: str, field: str
) -> None:
    path = write(tmp_path, entry(f'[[pipelines.transforms]]\nop = "cast"\n{cast}'))
    with pytest.raises(ConfigError) as caught:
        load_pipelines(path)
    assert f"{path}: pipeline 'p': {field}: " in str(caught.value)


def test_every_broken_pipeline_is_reported_at_once(tmp_path: Path) -> None:
    body = (
        entry('format = "xml"', name="one")
        + entry("", name="fine")
        + entry('compression = "zip"', name="two")
    )
    with pytest.raises(ConfigError) as caught:
        load_pipelines(write(tmp_path, body))
    lines = str(caught.value).splitlines()
    assert [line.split(": ")[1] for line in lines] == ["pipeline 'one'", "pipeline 'two'"]


def test_a_name_used_twice_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="pipeline 'p': name: is used more than once"):
        load_pipelines(write(tmp_path, entry() + entry()))


def test_a_missing_or_broken_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_pipelines(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_pipelines(write(tmp_path, "[[pipelines]\n"))


def test_an_unusable_file_is_one_line_naming_it(tmp_path: Path) -> None:
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes(entry("# caf\u00e9").encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1.toml: pipelines file is not UTF-8 text"):
        load_pipelines(latin1)
    with pytest.raises(ConfigError, match=r": is a directory, not a pipelines file"):
        load_pipelines(tmp_path)


@pytest.mark.parametrize("body", ["", "# nothing yet\n", "pipelines = []\n"])
def test_a_file_without_pipelines_is_refused(tmp_path: Path, body: str) -> None:
    with pytest.raises(ConfigError, match=r"pipelines.toml: no pipelines: add a \[\[pipelines\]\]"):
        load_pipelines(write(tmp_path, body))


@pytest.mark.parametrize(
    ("content", "problem"),
    [(b'[{"name": "caf\xe9", "type": "STRING"}]', "is not UTF-8 text"), (None, "is a directory")],
)
def test_an_unusable_schema_file_names_the_pipeline(
    tmp_path: Path, content: bytes | None, problem: str
) -> None:
    schema = tmp_path / "schema.json"
    if content is None:
        schema.mkdir()
    else:
        schema.write_bytes(content)
    path = write(tmp_path, entry(schema='"schema.json"'))
    with pytest.raises(ConfigError) as caught:
        load_pipelines(path)
    assert str(caught.value).startswith(f"{path}: pipeline 'p': schema: {schema}: ")
    assert problem in str(caught.value)


def test_type_aliases_are_read_as_the_canonical_names(tmp_path: Path) -> None:
    schema = (
        '[{name = "a", type = "int64"}, '
        '{name = "b", type = "FLOAT64"}, {name = "c", type = "Bool"}]'
    )
    p = load_pipelines(write(tmp_path, entry(schema=schema))).pipelines[0]
    assert [c.type for c in p.table.columns] == ["INTEGER", "FLOAT", "BOOLEAN"]


def test_check_config_reports_file_pipeline_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, entry('[pipelines.csv]\ndelimiter = ";;"'))
    result = CliRunner().invoke(cli, ["check-config"], env={"INGEST_PIPELINES": str(path)})
    assert result.exit_code != 0
    assert f"{path}: pipeline 'p': csv.delimiter: must be one character" in result.output


def make(**changes: object) -> Pipeline:
    [p] = load_pipelines(EXAMPLES / "pipelines.toml").pipelines[:1]
    return replace(p, **changes)  # type: ignore[arg-type]


def test_matching_by_prefix_glob_and_date_template() -> None:
    plain = make(prefix="orders/", glob="*.csv")
    assert plain.matches("landing", "orders/a.csv")
    assert not plain.matches("landing", "orders/a.json")
    assert not plain.matches("other", "orders/a.csv")
    dated = make(prefix="in/{date}/", glob="*.csv")
    assert dated.matches("landing", "in/2026-11-20/x.csv")
    assert not dated.matches("landing", "in/latest/x.csv")
    assert dated.prefix_for("2026-11-20") == "in/2026-11-20/"
    assert dated.prefix_for(None) == "in/"


def test_a_pipeline_never_matches_its_own_quarantine() -> None:
    everything = make(prefix="", glob=None)
    assert everything.matches("landing", "orders/a.csv")
    assert not everything.matches("landing", "_quarantine/orders/orders/a.csv#1.jsonl")


def test_the_version_follows_what_shapes_the_rows() -> None:
    base = make()
    assert base.version == make().version
    assert make(lineage=False).version != base.version
    assert make(transforms=()).version != base.version
    # Settings that choose or judge files leave the rows, and so a load's job id, as they are.
    assert make(prefix="other/", glob="*.csv").version == base.version
    assert make(bad_rows=BadRowPolicy(max_count=5, max_ratio=None)).version == base.version
    assert make(skip_same_content=False).version == base.version


def test_the_format_examples_load() -> None:
    found = load_pipelines(EXAMPLES / "formats" / "pipelines.toml")
    assert [p.format for p in found.pipelines] == ["ndjson", "csv", "parquet"]
    totals = found.get("daily_totals")
    assert totals is not None and totals.write_mode == "replace_partition"
    events = found.get("events_parquet")
    assert events is not None and not events.needs_transform  # BigQuery may read gs:// itself


def refused(tmp_path: Path, body: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_pipelines(write(tmp_path, body))
    return str(caught.value)


@pytest.mark.parametrize(
    ("extra", "field", "suggested"),
    [
        ("[pipelines.bad_rows]\nmax_ratoi = 0.25", "bad_rows.max_ratoi", "max_ratio"),
        ('partiton_field = "day"', "partiton_field", "partition_field"),
        ("[pipelines.badrows]\nmax_count = 1", "badrows", "bad_rows"),
        ('[pipelines.cvs]\ndelimiter = ";"', "cvs", "csv"),
        ("sweep_lookback = 2", "sweep_lookback", "sweep_lookback_days"),
        ("[pipelines.csv]\nnull_value = ['']", "csv.null_value", "null_values"),
        (
            '[[pipelines.transforms]]\nop = "rename"\ncolumn = "a"\ntoo = "id"',
            "transforms[0].too",
            "to",
        ),
    ],
)
def test_a_typo_is_refused_with_the_closest_key(
    tmp_path: Path, extra: str, field: str, suggested: str
) -> None:
    path = write(tmp_path, entry(extra))
    text = refused(tmp_path, entry(extra))
    assert text == f"{path}: pipeline 'p': {field}: unknown option, did you mean `{suggested}`?"


def test_a_typo_is_named_before_what_it_breaks(tmp_path: Path) -> None:
    # Without partition_field, replace_partition is refused too: the typo is the cause to show.
    text = refused(tmp_path, entry('partiton_field = "day"\nwrite_mode = "replace_partition"'))
    assert "partiton_field: unknown option, did you mean `partition_field`?" in text


def test_a_misspelled_top_level_table_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, entry() + '[[pipeline]]\nname = "q"\n')
    text = refused(tmp_path, entry() + '[[pipeline]]\nname = "q"\n')
    assert text == f"{path}: pipeline: unknown option, did you mean `pipelines`?"


def test_a_key_of_another_operation_is_refused(tmp_path: Path) -> None:
    body = entry('[[pipelines.transforms]]\nop = "rename"\ncolumn = "a"\nto = "id"\nformat = "%Y"')
    assert "transforms[0].format: unknown option (known: column, op, to)" in refused(tmp_path, body)


@pytest.mark.parametrize(
    ("fmt", "message"),
    [
        ("%Y-%m-%Q", "%Q is not a strptime directive"),
        ("yyyy-MM-dd", "is not a strptime format (Java-style yyyy?)"),
        ("%Y-MM-%d", "Java-style MM"),
        ("20261120", "is not a strptime format"),
        ("%Y-%m-%d %", "ends with a lone '%'"),
        ("%G-%V", "%G and %V go together"),
    ],
)
def test_a_cast_format_is_checked_at_start_up(tmp_path: Path, fmt: str, message: str) -> None:
    body = entry(f'[[pipelines.transforms]]\nop = "cast"\ncolumn = "day"\nformat = "{fmt}"')
    text = refused(tmp_path, body)
    assert "pipeline 'p': transforms[0].format: " in text and message in text


def test_a_from_path_format_is_checked_too(tmp_path: Path) -> None:
    transform = 'op = "from_path"\ncolumn = "day"\npattern = "(\\\\d+)"\nformat = "yyyyMMdd"'
    text = refused(tmp_path, entry(f"[[pipelines.transforms]]\n{transform}"))
    assert "transforms[0].format: 'yyyyMMdd' is not a strptime format" in text


@pytest.mark.parametrize(
    "fmt", ["%d/%m/%Y", "%Y%m%d", "%Y-%m-%dT%H:%M:%S.%f%z", "%G-%V-%u", "%%%Y"]
)
def test_strptime_formats_are_accepted(tmp_path: Path, fmt: str) -> None:
    body = entry(f'[[pipelines.transforms]]\nop = "cast"\ncolumn = "day"\nformat = "{fmt}"')
    [p] = load_pipelines(write(tmp_path, body)).pipelines
    assert p.transforms[0].format == fmt


def test_the_directive_list_is_pythons() -> None:
    from service.pipeline.option_rules import STRPTIME_DIRECTIVES

    python = importlib.import_module("_strptime")  # strptime's own table, private: no stubs
    assert set(python.TimeRE()) == STRPTIME_DIRECTIVES


@pytest.mark.parametrize(
    ("line", "field", "message"),
    [
        ('table = "my-ds.t"', "table", "dataset 'my-ds': BigQuery allows letters, digits and '_'"),
        ('table = "ds.t$1"', "table", "does not allow '$'"),
        ('bucket = "Landing"', "bucket", "'Landing' is not a bucket name"),
        ('bucket = "ab"', "bucket", "is not a bucket name"),
        ('name = "orders.v2"', "name", "letters, digits, '_' and '-'"),
        ('[pipelines.bad_rows]\nquarantine = "gs://Q_/x/"', "bad_rows.quarantine", "bucket name"),
    ],
)
def test_names_are_checked_as_google_accepts_them(
    tmp_path: Path, line: str, field: str, message: str
) -> None:
    key = line.split(" = ", maxsplit=1)[0]
    body = "\n".join(x for x in entry().splitlines() if not x.startswith(f"{key} = "))
    name = line.split('"')[1] if key == "name" else "p"
    if line.startswith("["):
        body = entry(line)  # a table of its own, after the entry's keys
    else:
        body = body.replace("[[pipelines]]", f"[[pipelines]]\n{line}", 1)
    text = refused(tmp_path, body)
    assert f"pipeline {name!r}: {field}: " in text and message in text, text


@pytest.mark.parametrize("table", ["ds.table 01", "ds.étudiant-01", "DS_2.00_お客様"])
def test_table_names_bigquery_allows_are_accepted(tmp_path: Path, table: str) -> None:
    [p] = load_pipelines(write(tmp_path, entry().replace('"ds.t"', f'"{table}"'))).pipelines
    assert p.table.name == table


def test_two_pipelines_loading_the_same_files_into_one_table_are_refused(tmp_path: Path) -> None:
    body = entry('prefix = "in/"', name="a") + entry('glob = "*.csv"', name="b")
    path = write(tmp_path, body)
    assert refused(tmp_path, body) == (
        f"{path}: pipelines 'a' and 'b' both match gs://bkt/in/x.csv and load it into ds.t:"
        " every such file would be loaded twice; narrow a prefix or glob"
    )


def test_pipelines_with_disjoint_files_or_tables_load(tmp_path: Path) -> None:
    disjoint = entry('glob = "*.csv"', name="a") + entry('glob = "*.json"', name="b")
    assert len(load_pipelines(write(tmp_path, disjoint)).pipelines) == 2
    fan_out = entry(name="a") + entry(name="b").replace('"ds.t"', '"ds.u"')
    assert len(load_pipelines(write(tmp_path, fan_out)).pipelines) == 2
