"""service/wiring.py: where the embedded data and the pipelines file are looked for."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from service.errors import ConfigError
from service.settings import Settings
from service.wiring import load_config, preflight, require_data_dir
from tests.conftest import EXAMPLES


def test_a_missing_pipelines_file_says_where_it_looked_and_how_to_set_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_config(Settings())
    assert str(caught.value) == (
        f"{tmp_path / 'pipelines.toml'}: pipelines file not found"
        " (set INGEST_PIPELINES to the pipelines file)"
    )


def test_in_a_checkout_it_points_at_the_example_pipelines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="pipelines file not found") as caught:
        load_config(Settings())
    assert str(caught.value).endswith(
        "(set INGEST_PIPELINES to the pipelines file; here that may be"
        " INGEST_PIPELINES=examples/pipelines.toml (what scripts/demo uses))"
    )
    pipelines = load_config(Settings(pipelines_file=Path("examples/pipelines.toml")))
    assert [p.name for p in pipelines.pipelines] == ["orders", "customers"]


def test_reading_needs_the_data_folder_and_makes_none(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="no data folder at "):
        require_data_dir(settings)
    assert not settings.data_dir.exists()
    preflight(settings)  # the server (and upload) make it
    assert require_data_dir(settings) == settings.data_dir
