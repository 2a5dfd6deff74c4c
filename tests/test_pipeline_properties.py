"""Property-based: generated CSV and NDJSON files each end in a defined state, with every row
counted as a reference parser counts it.

For every file the unit ends (bounded by a timeout), and either it loaded with
rows read = loaded + quarantined = the records Python's own parser finds (``csv`` with the same
dialect, ``json`` line by line), loaded = the records that parser finds good, and the table
holds exactly those rows; or it failed permanently with a reason. Files carry blank lines
(before the header too), byte-order marks, quotes, delimiters and newlines inside values,
ragged rows, long fields, other encodings and gzip. Deterministic and modest in size: the
machine has two cores.
"""

from __future__ import annotations

import asyncio
import csv
import gzip
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.errors import StageError
from service.models import Column, TableSpec, UnitResult
from service.pipeline import feed
from service.pipeline.definition import BadRowPolicy, CsvOptions, Pipeline
from tests.pipeline_support import Rig, pipeline

PROFILE = settings(
    derandomize=True,
    deadline=None,
    database=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# A bound far above any generated file's run: a unit that hangs fails the example instead.
UNIT_TIMEOUT_S = 120
COLUMNS = ("id", "name", "note", "day")
# Every column a nullable STRING: counts then depend on the file's shape alone.
TABLE = TableSpec("fuzz.rows", tuple(Column(name, "STRING") for name in COLUMNS))
LOOSE = BadRowPolicy(max_count=None, max_ratio=None)

field_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\x00\r"),
    max_size=12,
) | st.sampled_from(["", " ", '"', '""', ",", "a,b", "line\nbreak", "é", "日本", "\t"])


@dataclass(frozen=True)
class CsvCase:
    records: list[list[str]]  # rows after the header; None-free
    blank_lead: str  # lines before the header
    blank_between: dict[int, str]  # blank lines inserted before record i
    terminator: str
    encoding: str
    bom: bool
    gzipped: bool
    long_at: int | None  # a record whose second field is made long

    def text(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator=self.terminator)
        out.write(self.blank_lead)
        writer.writerow(COLUMNS)
        for i, record in enumerate(self.rows()):
            out.write(self.blank_between.get(i, ""))
            writer.writerow(record)
        return out.getvalue()

    def rows(self) -> Iterator[list[str]]:
        for i, record in enumerate(self.records):
            if i == self.long_at and len(record) > 1:
                yield [record[0], "y" * 300_000, *record[2:]]
            else:
                yield record

    def data(self) -> bytes:
        raw = self.text().encode(self.encoding)
        if self.bom:
            raw = b"\xef\xbb\xbf" + raw
        return gzip.compress(raw) if self.gzipped else raw


blank_line = st.sampled_from(["\n", "\r\n", "   \r\n", " \t\n", "\n\n"])
csv_cases = st.builds(
    CsvCase,
    records=st.lists(st.lists(field_text, min_size=1, max_size=6), max_size=40),
    blank_lead=st.sampled_from(["", "\n", "\r\n", "   \r\n", "\n \n"]),
    blank_between=st.dictionaries(st.integers(0, 40), st.sampled_from(["\n", "\r\n"]), max_size=3),
    terminator=st.sampled_from(["\n", "\r\n"]),
    encoding=st.sampled_from(["utf-8", "utf-16", "latin-1"]),
    bom=st.booleans(),
    gzipped=st.booleans(),
    long_at=st.none() | st.integers(0, 40),
).filter(lambda c: (c.encoding == "utf-8" or not c.bom) and encodable(c))


def encodable(case: CsvCase) -> bool:
    try:
        case.text().encode(case.encoding)
    except UnicodeEncodeError:
        return False
    return True


def reference_csv(case: CsvCase) -> tuple[int, list[list[str]]]:
    """Records and good records as Python's csv module reads the text: blank lines are not
    records, and lines of only spaces before the header are blank too."""
    limit = csv.field_size_limit(1 << 30)  # the long fields (300 KB) pass the default 128 KiB
    try:
        lines = [r for r in csv.reader(io.StringIO(case.text(), newline="")) if r]
    finally:
        csv.field_size_limit(limit)
    while lines and lines[0] != list(COLUMNS):
        assert not "".join(lines[0]).strip(), "only blank lines come before the header"
        lines.pop(0)
    records = lines[1:]
    return len(records), [r for r in records if len(r) == len(COLUMNS)]


@dataclass
class Ended:
    result: UnitResult | None
    reason: str | None
    rows_in_table: int = 0


async def run_unit(root: Path, p: Pipeline, name: str, data: bytes, gzipped: bool) -> Ended:
    """One unit on fresh embedded backends: how it ended, and the rows its table holds."""
    rig = Rig(root)
    try:
        info = await rig.put(name, data, content_encoding="gzip" if gzipped else None)
        try:
            result = await asyncio.wait_for(rig.run(p, info), timeout=UNIT_TIMEOUT_S)
        except StageError as exc:
            assert not exc.transient, f"a generated file must not fail transiently: {exc}"
            return Ended(None, str(exc.cause))
        return Ended(result, None, len(await rig.rows(TABLE.name, columns="id")))
    finally:
        await rig.close()


def assert_counted(ended: Ended, records: int, good: int) -> None:
    """Loaded with every record counted as the reference counts it, or failed with a reason."""
    if ended.result is None:
        assert ended.reason, "a failed unit must say why"
        return
    result = ended.result
    assert result.rows_read == result.rows_loaded + result.rows_quarantined
    assert (result.rows_read, result.rows_loaded, ended.rows_in_table) == (records, good, good)


@pytest.fixture(scope="module")
def loop_and_root(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[asyncio.Runner, Path]]:
    # Small blocks: every file is cut at record boundaries many times, quotes and all.
    with pytest.MonkeyPatch.context() as patch, asyncio.Runner() as runner:
        patch.setattr(feed, "BLOCK_BYTES", 256)
        yield runner, tmp_path_factory.mktemp("fuzz")


class Counter:
    examples = 0


def check_csv(runner: asyncio.Runner, root: Path, case: CsvCase) -> None:
    Counter.examples += 1
    n = Counter.examples
    p = pipeline(table=TABLE, csv=CsvOptions(encoding=case.encoding), bad_rows=LOOSE)
    ended = runner.run(
        run_unit(root / f"csv-{n}", p, f"orders/f{n}.csv", case.data(), case.gzipped)
    )
    records, good = reference_csv(case)
    assert_counted(ended, records, len(good))


@PROFILE
@given(case=csv_cases)
def test_every_generated_csv_file_ends_with_every_row_counted(
    loop_and_root: tuple[asyncio.Runner, Path], case: CsvCase
) -> None:
    check_csv(*loop_and_root, case)


# ---- NDJSON ------------------------------------------------------------------------------

scalar = st.none() | st.booleans() | st.integers(-(10**6), 10**6) | field_text
good_object = st.dictionaries(st.sampled_from(COLUMNS), scalar, max_size=4)
json_line = st.one_of(
    good_object.map(json.dumps),
    st.dictionaries(st.sampled_from(COLUMNS), st.lists(scalar, max_size=2), min_size=1).map(
        json.dumps
    ),  # nested: kept as JSON text (every column is a STRING)
    st.dictionaries(st.sampled_from(["unknown", "typo"]), scalar, min_size=1).map(json.dumps),
    st.sampled_from(["{", "[1, 2]", '"text"', "{'single': 1}", "nul\x00l", "{}"]),
    st.sampled_from(["", "   ", "\t"]),  # blank: not a record
)


def reference_ndjson(lines: list[str]) -> tuple[int, int]:
    """Records (non-blank lines) and good records (objects of known fields; nested values are
    good too: their JSON text is kept in these STRING columns)."""
    records = [line for line in lines if line.strip()]
    return len(records), sum(1 for line in records if _good_json(line))


def _good_json(line: str) -> bool:
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return False
    if not isinstance(value, dict):
        return False
    return all(k in COLUMNS for k in value)


@PROFILE
@given(lines=st.lists(json_line, max_size=40), gzipped=st.booleans(), crlf=st.booleans())
def test_every_generated_ndjson_file_ends_with_every_row_counted(
    loop_and_root: tuple[asyncio.Runner, Path], lines: list[str], gzipped: bool, crlf: bool
) -> None:
    runner, root = loop_and_root
    Counter.examples += 1
    n = Counter.examples
    text = ("\r\n" if crlf else "\n").join(lines) + "\n"
    data = gzip.compress(text.encode()) if gzipped else text.encode()
    p = pipeline(table=TABLE, format="ndjson", bad_rows=LOOSE)
    ended = runner.run(run_unit(root / f"ndjson-{n}", p, f"events/f{n}.json", data, gzipped))
    assert_counted(ended, *reference_ndjson(lines))
