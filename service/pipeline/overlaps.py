"""Pipelines that match the same objects: each matching pipeline loads the object.

Into two tables that is a fan-out, perhaps meant (``check-config`` warns); into one table it
loads every such file twice, so the pipelines file is refused. The check is by example: names
built from the two pipelines' prefixes and globs, tried against both, so an overlap reported is
real and names an object both would take.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import combinations

from service.pipeline.definition import Pipeline

# A glob's wildcards and what stands for each in an example name.
WILDCARD = re.compile(r"\*|\?|\[!?[^]]*\]")
# The date a `{date}` prefix takes in an example name.
EXAMPLE_DATE = "2026-01-01"


@dataclass(frozen=True)
class Overlap:
    first: Pipeline
    second: Pipeline
    example: str  # an object name both pipelines match

    @property
    def same_table(self) -> bool:
        return self.first.table.name == self.second.table.name

    def describe(self) -> str:
        both = f"pipelines {self.first.name!r} and {self.second.name!r}"
        uri = f"gs://{self.first.bucket}/{self.example}"
        if self.same_table:
            return (
                f"{both} both match {uri} and load it into {self.first.table.name}: every such"
                " file would be loaded twice; narrow a prefix or glob"
            )
        return f"{both} both match {uri}: each loads it into its own table"


def overlaps(pipelines: Iterable[Pipeline]) -> Iterator[Overlap]:
    for first, second in combinations(pipelines, 2):
        if first.bucket != second.bucket:
            continue
        example = next(
            (
                n
                for n in _examples(first, second)
                if first.matches(first.bucket, n) and second.matches(first.bucket, n)
            ),
            None,
        )
        if example is not None:
            yield Overlap(first, second, example)


def _examples(a: Pipeline, b: Pipeline) -> Iterator[str]:
    """Each pipeline's prefix followed by either pipeline's glob (or a plain name)."""
    tails = [_glob_example(p.glob) for p in (a, b)]
    for p in (a, b):
        for tail in tails:
            yield p.prefix.replace("{date}", EXAMPLE_DATE) + tail


def _glob_example(glob: str | None) -> str:
    if glob is None:
        return "x"
    return WILDCARD.sub(_wildcard_example, glob)


def _wildcard_example(found: re.Match[str]) -> str:
    text = found.group()
    if text == "*" and found.start() > 0 and found.end() == len(found.string):
        return ""  # `*.csv*` reads best as x.csv
    if text.startswith("[") and not text.startswith("[!") and len(text) > 2:
        return text[1]
    return "x"
