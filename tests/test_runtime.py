"""What the app holds while it serves: its shutdown is bounded whatever the clients do."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from service.runtime import Runtime
from service.settings import Settings

# Bound on the test's own wait; the runtime's close timeout is far shorter.
WAIT_SECONDS = 30.0


async def test_clients_that_never_finish_closing_do_not_hold_shutdown(
    embedded_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = Runtime(embedded_settings)
    await runtime.open()
    stuck = asyncio.Event()  # never set: a client whose close call never returns
    real = runtime.backends

    class NeverClosing:
        async def close(self) -> None:
            await stuck.wait()

    runtime._backends = replace(real, outcomes=NeverClosing())  # type: ignore[arg-type]
    await asyncio.wait_for(runtime.close(), WAIT_SECONDS)
    assert "clients not closed in" in caplog.text
    with pytest.raises(RuntimeError):
        runtime.backends  # noqa: B018 - released all the same
    await real.close()


async def test_closing_lets_the_block_parsers_threads_end(embedded_settings: Settings) -> None:
    # Idle, they outlived serving: the process waited a second for them and warned at every stop.
    runtime = Runtime(embedded_settings)
    await runtime.open()
    assert runtime._ingestor is not None
    blocks = runtime._ingestor.runner.blocks
    blocks.submit(int).result()  # a worker thread exists, as after any unit
    await runtime.close()
    with pytest.raises(RuntimeError, match="shutdown"):
        blocks.submit(int)
