"""The quick chaos run (bench/chaos.py --quick) as a test: skip locally with -m "not chaos"."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.chaos, pytest.mark.emulators, pytest.mark.timeout(600)]


def test_quick_chaos_run_loads_every_file_exactly_once() -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "chaos.py"), "--quick", "--seed", "11"],
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
