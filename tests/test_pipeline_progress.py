"""progress: which stage a stall is blamed on."""

from __future__ import annotations

from service.pipeline.progress import Board, Progress


def test_the_first_running_stage_is_blamed() -> None:
    progress = Progress()
    with progress.working("extract"), progress.working("parse"), progress.working("validate"):
        assert progress.stage == "extract"  # the others wait for its data


def test_a_stage_waiting_for_room_downstream_is_not_blamed() -> None:
    progress = Progress()
    with progress.working("extract"), progress.working("parse"), progress.working("validate"):
        with progress.waiting_for_room("extract"), progress.waiting_for_room("parse"):
            assert progress.stage == "validate"  # it holds up the two before it
        assert progress.stage == "extract"


def test_between_stages_the_last_one_started_is_blamed() -> None:
    progress = Progress()
    assert progress.stage == "start"
    with progress.working("load"):
        pass
    assert progress.stage == "load"


def test_steps_and_probes() -> None:
    progress = Progress()
    progress.advance("extract")
    progress.advance("parse")
    assert progress.ticks == 2

    async def running() -> bool:
        return True

    with progress.probing(running):
        assert progress.probe is running
    assert progress.probe is None


def test_the_board_keeps_the_counts_of_units_that_ended() -> None:
    board = Board()
    unit = Progress()
    with board.watching("u", unit):
        unit.advance("extract", nbytes=10)
        unit.advance("validate", rows=3)
        assert (list(board.running), board.rows, board.bytes) == (["u"], 3, 10)
    assert (board.running, board.ended, board.rows, board.bytes) == ({}, 1, 3, 10)
