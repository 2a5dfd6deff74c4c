"""service/cli/unit_progress.py: the live line of rows and bytes, on terminals only."""

from __future__ import annotations

import pytest

from service.cli import common
from service.cli.unit_progress import board_line, showing, size
from service.pipeline.progress import Board, Progress


def test_the_line_counts_running_and_ended_units() -> None:
    board = Board()
    first, second = Progress(), Progress()
    with board.watching("a", first):
        first.advance("extract", nbytes=2_500_000)
        first.advance("validate", rows=1000)
        with board.watching("b", second):
            second.advance("validate", rows=5)
            assert board_line(board, "sweeping") == (
                "sweeping: 2 running, 0 done; 1,005 rows, 2.5 MB read"
            )
    assert board_line(board, "sweeping") == "sweeping: 0 running, 2 done; 1,005 rows, 2.5 MB read"


@pytest.mark.parametrize(
    ("count", "text"), [(0, "0 B"), (999, "999 B"), (1500, "1.5 kB"), (3 * 10**9, "3.0 GB")]
)
def test_sizes(count: int, text: str) -> None:
    assert size(count) == text


class FakeStatus:
    def __init__(self, shown: list[str], text: str) -> None:
        self.shown = shown
        shown.append(text)

    def __enter__(self) -> FakeStatus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shown.append("(gone)")

    def update(self, text: str) -> None:
        self.shown.append(text)


@pytest.mark.parametrize("terminal", [True, False])
async def test_a_status_line_only_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch, terminal: bool
) -> None:
    shown: list[str] = []
    console = common.err_console
    monkeypatch.setattr(console, "status", lambda text: FakeStatus(shown, text))
    monkeypatch.setattr(type(console), "is_terminal", property(lambda _: terminal))
    async with showing(Board(), "sweeping"):
        pass
    expected = ["sweeping: 0 running, 0 done; 0 rows, 0 B read", "(gone)"]
    assert shown == (expected if terminal else [])
