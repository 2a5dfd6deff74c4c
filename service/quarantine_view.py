"""What a quarantine object says, for people: bad rows grouped by reason, and why the file failed.

The object is JSON Lines (docs/quarantine.md): one line per bad row (``row`` its number in the
file, ``reason``, ``raw`` content), then, for a file rejected whole, one line with ``row`` null
giving the file-level reason. Rows are grouped by their reason's kind (the reason without the
row's own values), most frequent first, with a few samples each. Pure: the command reads.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from service.errors import PermanentError
from service.pipeline.context import reason_kind

# Sample rows kept per reason.
SAMPLES_PER_REASON = 3
# Raw content shown per sample; the object keeps up to 64 KiB of each row.
SAMPLE_CHARS = 200


@dataclass(frozen=True)
class Sample:
    row: int | None
    reason: str
    raw: str


@dataclass
class ReasonGroup:
    kind: str
    count: int = 0
    samples: list[Sample] = field(default_factory=list)


@dataclass(frozen=True)
class QuarantineReport:
    uri: str
    bad_rows: int
    groups: tuple[ReasonGroup, ...]  # most frequent first
    file_reason: str | None  # why the file was rejected whole, when it was

    def as_json(self) -> dict[str, object]:
        return {
            "uri": self.uri,
            "bad_rows": self.bad_rows,
            "file_reason": self.file_reason,
            "reasons": [
                {
                    "reason": g.kind,
                    "rows": g.count,
                    "samples": [s.__dict__ for s in g.samples],
                }
                for g in self.groups
            ],
        }


def summarize(uri: str, lines: Iterable[bytes]) -> QuarantineReport:
    """The report of one quarantine object's lines; a line that is not the layout is an error."""
    groups: dict[str, ReasonGroup] = {}
    file_reason = None
    bad = 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            row, reason, raw = entry["row"], str(entry["reason"]), entry["raw"]
        except (ValueError, KeyError, TypeError) as exc:
            raise PermanentError(f"{uri} line {number} is not a quarantine line: {exc}") from exc
        if row is None:
            file_reason = reason
            continue
        bad += 1
        group = groups.setdefault(reason_kind(reason), ReasonGroup(reason_kind(reason)))
        group.count += 1
        if len(group.samples) < SAMPLES_PER_REASON:
            text = str(raw or "")
            clipped = text if len(text) <= SAMPLE_CHARS else text[:SAMPLE_CHARS] + "…"
            group.samples.append(Sample(int(row), reason, clipped))
    ordered = sorted(groups.values(), key=lambda g: (-g.count, g.kind))
    return QuarantineReport(uri, bad, tuple(ordered), file_reason)
