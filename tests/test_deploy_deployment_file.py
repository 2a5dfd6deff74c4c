"""``eventarc.yaml``: read into a Deployment; every error is one line naming file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.deploy.deployment_file import load_deployment
from service.errors import ConfigError
from tests.conftest import ROOT
from tests.test_deploy_plan import BASE, deployment, write


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"project": "Bad_Project"}, "project: 'Bad_Project' is not a valid name"),
        ({"buckets": {}}, "buckets.landing: is used by pipeline 'orders'"),
        (
            {"schedules": [{"name": "x", "pipeline": "nope", "schedule": "0 * * * *"}]},
            "schedules[0].pipeline: 'nope' is not in the pipelines file",
        ),
        (
            {"schedules": [{"name": "x", "pipeline": "orders", "schedule": "daily"}]},
            "schedules[0].schedule: must be a cron expression of five fields",
        ),
        (
            {"schedules": [{"name": "x", "pipeline": "orders", "schedule": "0 * * * *",
                            "time_zone": "Mars/Olympus"}]},
            "schedules[0].time_zone: 'Mars/Olympus' is not a time zone",
        ),
        ({"service": {"env": {"INGEST_PROJECT": "x"}}}, "is set by the plan from project"),
        ({"service": {"env": {"INGEST_TYPO": "x"}}}, "INGEST_TYPO: is not a setting"),
        ({"service": {"timeout_seconds": 300}}, "must be at least delivery.ack_deadline"),
        ({"delivery": {"max_delivery_attempts": 2}}, "must be between 5 and 100"),
        ({"pipelines": "missing.toml"}, "missing.toml"),
    ],
)  # fmt: skip
def test_errors_name_the_field(tmp_path: Path, changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        deployment(tmp_path, **changes)
    assert message in str(caught.value)
    assert str(tmp_path) in str(caught.value)


def test_numbers_stand_for_text_and_empty_sections_take_the_defaults(tmp_path: Path) -> None:
    d = deployment(tmp_path, service={"cpu": 4}, image={"tag": 20260101}, delivery=None)
    assert (d.service.cpu, d.image.tag) == ("4", "20260101")
    assert d.delivery.ack_deadline_seconds == 600


def test_a_deployment_file_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    path.write_bytes(path.read_bytes() + "# caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ConfigError) as caught:
        load_deployment(path)
    assert str(caught.value).startswith(f"{path}: deployment file is not UTF-8 text")


def test_a_bucket_name_with_a_trailing_newline_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a valid bucket name"):
        deployment(tmp_path, buckets={"landing": "EU", "landing\n": "EU"})


SCHEDULE = {"name": "x", "pipeline": "orders", "schedule": "0 * * * *"}


@pytest.mark.parametrize(
    ("changes", "field", "meant"),
    [
        ({"servcie": {"cpu": 4}}, "servcie", "service"),
        ({"service": {"timout_seconds": 900}}, "service.timout_seconds", "timeout_seconds"),
        ({"delivery": {"max_attempts": 9}}, "delivery.max_attempts", "max_delivery_attempts"),
        ({"schedules": [{**SCHEDULE, "timezone": "UTC"}]}, "schedules[0].timezone", "time_zone"),
    ],
)
def test_a_typo_is_refused_with_the_closest_key(
    tmp_path: Path, changes: dict[str, object], field: str, meant: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        deployment(tmp_path, **changes)
    path = tmp_path / "eventarc.yaml"
    assert str(caught.value) == f"{path}: {field}: unknown option, did you mean `{meant}`?"


def test_a_key_like_none_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"triggers.topic: unknown option \(known: sched"):
        deployment(tmp_path, triggers={"topic": "t-x"})


def test_a_misspelled_setting_names_the_closest_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"INGEST_BAKEND: .* did you mean `INGEST_BACKEND`"):
        deployment(tmp_path, service={"env": {"INGEST_BAKEND": "x"}})


def test_the_repository_deployment_file_loads() -> None:
    assert load_deployment(ROOT / "eventarc.yaml").pipelines
