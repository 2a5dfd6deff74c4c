"""The quick chaos run (bench/chaos.py --quick), on each load path, as a test: skip locally
with -m "not chaos"."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.chaos, pytest.mark.emulators, pytest.mark.timeout(600)]


@pytest.mark.parametrize("load", ["job", "stream"])
def test_quick_chaos_run_loads_every_file_exactly_once(load: str) -> None:
    command = [sys.executable, str(ROOT / "bench" / "chaos.py"), "--quick", "--seed", "11"]
    run = subprocess.run(
        [*command, "--load", load],
        capture_output=True,
        text=True,
        timeout=560,
        check=False,
    )
    last = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
    figures = dict(part.split("=", 1) for part in last.split() if "=" in part)
    assert figures.get("files") == "40", run.stdout + run.stderr
    assert figures["duplicated"] == "0", run.stdout
    assert figures["lost"] == "0", run.stdout
    assert figures["stuck"] == "0", run.stdout
    assert figures["loaded_once"] == "40", run.stdout
    assert run.returncode == 0, run.stdout + run.stderr
    if load == "stream":  # every kill waited for a commit held after finalize
        assert "kills_between_finalize_and_commit=3 " in run.stdout, run.stdout
