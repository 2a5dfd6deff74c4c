"""``eventarc.yaml``: read into a Deployment; every error is one line naming file and field."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from service.deploy.build_context import build_source
from service.deploy.deployment_file import PLACEHOLDER_PROJECT, load_deployment
from service.errors import ConfigError
from tests.conftest import EXAMPLES, ROOT
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
        ({"service": {"env": {"INGEST_HOST": "127.0.0.1"}}}, "is set by the plan from the image"),
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


def test_the_repository_deployment_file_knows_every_key_it_uses(tmp_path: Path) -> None:
    # The file ships with a placeholder project, refused on purpose: put a real-looking one in.
    top = yaml.safe_load((ROOT / "eventarc.yaml").read_text())
    top["project"] = "acme-ingest-prod"
    top["pipelines"] = str(ROOT / top["pipelines"])
    copy = tmp_path / "eventarc.yaml"
    copy.write_text(yaml.safe_dump(top))
    assert load_deployment(copy).pipelines


def test_the_example_project_id_is_refused_in_one_line(tmp_path: Path) -> None:
    example = yaml.safe_load((ROOT / "eventarc.yaml").read_text())["project"]
    assert example == PLACEHOLDER_PROJECT
    with pytest.raises(ConfigError) as caught:
        deployment(tmp_path, project=example)
    assert "project: 'my-ingest-project' is the example's" in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("buckets", "bigquery", "firestore"),
    [
        ({"landing": "EU"}, "EU", "eur3"),
        ({"landing": "us"}, "US", "nam5"),
        ({"landing": "EUROPE-WEST1"}, "europe-west1", "europe-west1"),
    ],
)
def test_locations_follow_the_buckets(
    tmp_path: Path, buckets: dict[str, str], bigquery: str, firestore: str
) -> None:
    d = deployment(tmp_path, buckets=buckets, bigquery=None, firestore=None)
    assert (d.bigquery_location, d.firestore.location) == (bigquery, firestore)
    given = deployment(tmp_path, buckets=buckets, bigquery={"location": "US"}, firestore=None)
    assert (given.bigquery_location, given.firestore.location) == ("US", firestore)


@pytest.mark.parametrize("buckets", [{"landing": "EU", "other": "US"}, {"landing": "EUR4"}])
def test_locations_the_buckets_do_not_decide_are_required(
    tmp_path: Path, buckets: dict[str, str]
) -> None:
    with pytest.raises(ConfigError, match=r"bigquery\.location: is required: the buckets"):
        deployment(tmp_path, buckets=buckets, bigquery=None)
    with pytest.raises(ConfigError, match=r"firestore\.location: is required: the buckets"):
        deployment(tmp_path, buckets=buckets, firestore=None)


def test_pipelines_outside_the_build_context_are_refused(tmp_path: Path) -> None:
    outside = tmp_path / "mine"
    shutil.copytree(EXAMPLES / "schemas", outside / "schemas")
    shutil.copy(EXAMPLES / "pipelines.toml", outside / "pipelines.toml")
    with pytest.raises(ConfigError, match="keep the pipelines file and its schemas in a folder"):
        deployment(tmp_path, pipelines=str(outside / "pipelines.toml"))


def test_a_folder_dockerignore_leaves_out_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "private").mkdir(parents=True)
    for name in ("Dockerfile", "cloudbuild.yaml", ".dockerignore"):
        shutil.copy(ROOT / name, root / name)
    (root / "private" / "pipelines.toml").write_text("")
    with pytest.raises(ConfigError, match=r"leaves private/pipelines.toml out .*add !private/"):
        build_source(root / "private" / "pipelines.toml", root)
    (root / "config").mkdir()
    (root / "config" / "pipelines.toml").write_text("")
    source = build_source(root / "config" / "pipelines.toml", root)
    assert (source.config, source.pipelines_name) == ("config", "pipelines.toml")
