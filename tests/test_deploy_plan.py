from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from service.cli import main
from service.deploy.commands import Command
from service.deploy.deployment_file import Deployment, load_deployment
from service.deploy.plan import env_flag, plan
from service.deploy.script import render, shell_word
from tests.conftest import EXAMPLES, ROOT

PROJECT = "demo-project-1"
RUNNER = f"serviceAccount:ingest-runner@{PROJECT}.iam.gserviceaccount.com"
TRIGGER = f"serviceAccount:ingest-trigger@{PROJECT}.iam.gserviceaccount.com"
PUBSUB_AGENT = "serviceAccount:service-${PROJECT_NUMBER}@gcp-sa-pubsub.iam.gserviceaccount.com"
IMAGE = f"europe-west1-docker.pkg.dev/{PROJECT}/ingest/ingest:1.2.3"

BASE: dict[str, object] = {
    "project": PROJECT,
    "region": "europe-west1",
    "pipelines": str(EXAMPLES / "pipelines.toml"),
    "image": {"tag": "1.2.3"},
    "service": {"env": {"INGEST_MAX_UNITS_IN_FLIGHT": 4}},
    "buckets": {"landing": "EU"},
    "bigquery": {"location": "EU"},
    "firestore": {"location": "eur3"},
    "schedules": [
        {"name": "orders-daily", "pipeline": "orders", "schedule": "15 6 * * *",
         "time_zone": "Europe/Paris"},
        {"name": "orders-backfill", "pipeline": "orders", "schedule": "0 3 1 * *",
         "prefix": "orders/2026-"},
    ],
}  # fmt: skip


def write(tmp_path: Path, data: dict[str, object]) -> Path:
    path = tmp_path / "eventarc.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def deployment(tmp_path: Path, **changes: object) -> Deployment:
    return load_deployment(write(tmp_path, {**BASE, **changes}))


def argvs(commands: list[Command], step: str) -> list[list[str]]:
    return [list(c.argv) for c in commands if c.step == step]


def test_storage_trigger_per_source_bucket_and_a_pubsub_trigger(tmp_path: Path) -> None:
    commands = plan(deployment(tmp_path))
    assert argvs(commands, "Eventarc triggers") == [
        [
            "gcloud", "eventarc", "triggers", "create", "ingest-landing",
            "--location=eu",
            "--destination-run-service=ingest",
            "--destination-run-region=europe-west1",
            "--destination-run-path=/",
            "--event-filters=type=google.cloud.storage.object.v1.finalized",
            "--event-filters=bucket=landing",
            f"--service-account=ingest-trigger@{PROJECT}.iam.gserviceaccount.com",
            f"--project={PROJECT}",
        ],
        [
            "gcloud", "eventarc", "triggers", "create", "ingest-schedule",
            "--location=europe-west1",
            "--destination-run-service=ingest",
            "--destination-run-region=europe-west1",
            "--destination-run-path=/",
            "--event-filters=type=google.cloud.pubsub.topic.v1.messagePublished",
            f"--transport-topic=projects/{PROJECT}/topics/ingest-schedule",
            f"--service-account=ingest-trigger@{PROJECT}.iam.gserviceaccount.com",
            f"--project={PROJECT}",
        ],
    ]  # fmt: skip


def test_delivery_settings_on_each_trigger_subscription(tmp_path: Path) -> None:
    commands = [c for c in plan(deployment(tmp_path)) if c.step.startswith("Delivery")]
    captures = [(c.capture, c.argv[:4]) for c in commands if c.capture]
    assert captures == [
        ("SUB_INGEST_LANDING", ("gcloud", "eventarc", "triggers", "describe")),
        ("SUB_INGEST_SCHEDULE", ("gcloud", "eventarc", "triggers", "describe")),
    ]
    update = ("gcloud", "pubsub", "subscriptions", "update")
    updates = [list(c.argv) for c in commands if c.argv[:4] == update]
    assert updates[0] == [
        "gcloud", "pubsub", "subscriptions", "update", "${SUB_INGEST_LANDING}",
        "--ack-deadline=600",
        "--min-retry-delay=10s",
        "--max-retry-delay=600s",
        f"--dead-letter-topic=projects/{PROJECT}/topics/ingest-dead-letter",
        "--max-delivery-attempts=10",
        f"--project={PROJECT}",
    ]  # fmt: skip
    assert updates[1][4] == "${SUB_INGEST_SCHEDULE}"
    # Pub/Sub's agent must publish to the dead-letter topic and read every source subscription.
    bindings = {c.argv[4:7] for c in commands if "add-iam-policy-binding" in c.argv}
    assert bindings == {
        ("ingest-dead-letter", f"--member={PUBSUB_AGENT}", "--role=roles/pubsub.publisher"),
        ("${SUB_INGEST_LANDING}", f"--member={PUBSUB_AGENT}", "--role=roles/pubsub.subscriber"),
        ("${SUB_INGEST_SCHEDULE}", f"--member={PUBSUB_AGENT}", "--role=roles/pubsub.subscriber"),
    }


def test_every_identity_gets_the_roles_it_needs(tmp_path: Path) -> None:
    commands = plan(deployment(tmp_path))
    granted = set()
    for c in commands:
        if "add-iam-policy-binding" in c.argv:
            flags = dict(a.removeprefix("--").split("=", 1) for a in c.argv if a.startswith("--"))
            granted.add((flags["member"], flags["role"]))
    assert {
        (TRIGGER, "roles/run.invoker"),
        (TRIGGER, "roles/eventarc.eventReceiver"),
        ("serviceAccount:${GCS_SERVICE_AGENT}", "roles/pubsub.publisher"),
        (RUNNER, "roles/storage.objectViewer"),
        (RUNNER, "roles/storage.objectUser"),
        (RUNNER, "roles/bigquery.dataEditor"),
        (RUNNER, "roles/bigquery.jobUser"),
        (RUNNER, "roles/datastore.user"),
    } <= granted
    assert argvs(commands, "What the service's identity may do")[1] == [
        "gcloud", "storage", "buckets", "add-iam-policy-binding", "gs://landing",
        f"--member={RUNNER}",
        "--role=roles/storage.objectUser",
        '--condition=expression=resource.name.startsWith('
        '"projects/_/buckets/landing/objects/_quarantine/"),title=quarantine-only',
        f"--project={PROJECT}",
    ]  # fmt: skip
    assert [
        "bq", "add-iam-policy-binding", f"--member={RUNNER}", "--role=roles/bigquery.dataEditor",
        f"{PROJECT}:sales",
    ] in argvs(commands, "What the service's identity may do")  # fmt: skip


def test_scheduler_jobs_publish_sweeps_to_the_topic(tmp_path: Path) -> None:
    assert argvs(plan(deployment(tmp_path)), "Cloud Scheduler jobs") == [
        [
            "gcloud", "scheduler", "jobs", "create", "pubsub", "orders-daily",
            "--location=europe-west1",
            "--schedule=15 6 * * *",
            "--time-zone=Europe/Paris",
            f"--topic=projects/{PROJECT}/topics/ingest-schedule",
            '--message-body={"pipeline":"orders"}',
            f"--project={PROJECT}",
        ],
        [
            "gcloud", "scheduler", "jobs", "create", "pubsub", "orders-backfill",
            "--location=europe-west1",
            "--schedule=0 3 1 * *",
            "--time-zone=Etc/UTC",
            f"--topic=projects/{PROJECT}/topics/ingest-schedule",
            '--message-body={"pipeline":"orders","prefix":"orders/2026-"}',
            f"--project={PROJECT}",
        ],
    ]  # fmt: skip


def test_cloud_run_service_and_its_settings(tmp_path: Path) -> None:
    [deploy] = argvs(plan(deployment(tmp_path)), "Deploy the Cloud Run service")
    assert deploy == [
        "gcloud", "run", "deploy", "ingest",
        f"--image={IMAGE}",
        "--region=europe-west1",
        f"--service-account=ingest-runner@{PROJECT}.iam.gserviceaccount.com",
        "--no-allow-unauthenticated",
        "--ingress=internal",
        "--concurrency=8",
        "--cpu=2",
        "--memory=2Gi",
        "--timeout=600",
        "--min-instances=0",
        "--max-instances=10",
        "--set-env-vars=INGEST_BACKEND=gcp,INGEST_PROJECT=demo-project-1,"
        "INGEST_ACK_DEADLINE_SECONDS=600,INGEST_BIGQUERY_LOCATION=EU,"
        "INGEST_FIRESTORE_DATABASE=(default),INGEST_LEDGER_COLLECTION=ingest-ledger,"
        "INGEST_PIPELINES=/app/config/pipelines.toml,INGEST_SPOOL_MAX_BYTES=1073741824,"
        "INGEST_MAX_UNITS_IN_FLIGHT=4",
        f"--project={PROJECT}",
    ]  # fmt: skip


def test_setup_steps_datasets_firestore_ttl_and_dead_letter_hold(tmp_path: Path) -> None:
    commands = plan(deployment(tmp_path))
    assert argvs(commands, "BigQuery datasets") == [
        ["bq", "mk", "--dataset", "--location=EU", f"{PROJECT}:sales"]
    ]
    assert argvs(commands, "Firestore ledger database, TTL policy and indexes")[1] == [
        "gcloud", "firestore", "fields", "ttls", "update", "expire_at",
        "--collection-group=ingest-ledger", "--enable-ttl", "--database=(default)",
        f"--project={PROJECT}",
    ]  # fmt: skip
    assert argvs(commands, "Pub/Sub topics and the dead-letter hold subscription")[2] == [
        "gcloud", "pubsub", "subscriptions", "create", "ingest-dead-letter-hold",
        "--topic=ingest-dead-letter", "--message-retention-duration=7d",
        "--expiration-period=never", f"--project={PROJECT}",
    ]  # fmt: skip


def test_env_flag_switches_delimiter_when_a_value_has_a_comma() -> None:
    assert env_flag((("A", "1"), ("B", "x"))) == "--set-env-vars=A=1,B=x"
    assert env_flag((("A", "a@x,b@y"), ("B", "2"))) == "--set-env-vars=^;^A=a@x,b@y;B=2"


def test_shell_words_expand_captured_values_and_quote_the_rest() -> None:
    assert shell_word("--member=serviceAccount:${GCS_SERVICE_AGENT}") == (
        '"--member=serviceAccount:${GCS_SERVICE_AGENT}"'
    )
    assert shell_word("--schedule=15 6 * * *") == "'--schedule=15 6 * * *'"
    with pytest.raises(ValueError):
        shell_word('${A}"; rm -rf /')


def test_the_script_passes_exactly_these_argv_to_gcloud(tmp_path: Path) -> None:
    """Run the rendered script against a fake gcloud/bq that records what it receives."""
    commands = plan(deployment(tmp_path))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls"
    # What the fake answers to the commands whose output the script keeps, and where it goes.
    answers = {
        ("projects describe", "${PROJECT_NUMBER}"): "123456789",
        ("storage service-agent", "${GCS_SERVICE_AGENT}"): "service-1@gs.example",
        ("triggers describe ingest-landing", "${SUB_INGEST_LANDING}"): "projects/p/subscriptions/a",
        (
            "triggers describe ingest-schedule",
            "${SUB_INGEST_SCHEDULE}",
        ): "projects/p/subscriptions/b",
        ("services describe ingest", "${SERVICE_URL}"): "https://ingest.example",
    }
    cases = "".join(f'  *"{match}"*) echo {out} ;;\n' for (match, _), out in answers.items())
    fake = bin_dir / "gcloud"
    fake.write_text(
        "#!/usr/bin/env bash\n"
        'for a in "$(basename "$0")" "$@"; do printf "%s\\x1f" "$a"; done >> "$CALLS"\n'
        'echo >> "$CALLS"\n'
        f'case "$*" in\n{cases}esac\n'
    )
    fake.chmod(0o755)
    (bin_dir / "bq").symlink_to(fake)
    script = tmp_path / "deploy.sh"
    script.write_text(render(commands))
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "CALLS": str(log)}
    subprocess.run(["bash", str(script)], check=True, env=env, timeout=60)
    calls = [line.split("\x1f")[:-1] for line in log.read_text().splitlines()]

    def expand(arg: str) -> str:
        for (_, ref), value in answers.items():
            arg = arg.replace(ref, value)
        return arg

    assert calls == [[expand(a) for a in c.argv] for c in commands]


def repository_file(tmp_path: Path) -> Path:
    """The repository's eventarc.yaml with a project id in place of its placeholder."""
    data = yaml.safe_load((ROOT / "eventarc.yaml").read_text())
    data["project"] = PROJECT
    data["pipelines"] = str(ROOT / data["pipelines"])
    return write(tmp_path, data)


def test_the_repository_deployment_file_plans(tmp_path: Path) -> None:
    commands = plan(load_deployment(repository_file(tmp_path)))
    script = tmp_path / "deploy.sh"
    script.write_text(render(commands))
    subprocess.run(["bash", "-n", str(script)], check=True, timeout=30)
    steps = list(dict.fromkeys(c.step for c in commands))
    assert steps[0] == "Enable the APIs"
    assert steps[-1] == "Cloud Scheduler jobs"


def test_cli_prints_the_script(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["deploy", "plan", str(repository_file(tmp_path))])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("#!/usr/bin/env bash\n")
    assert "gcloud eventarc triggers create ingest-landing" in result.output


def test_cli_reports_a_bad_file(tmp_path: Path) -> None:
    path = write(tmp_path, {**BASE, "delivery": {"ack_deadline_seconds": 900}})
    result = CliRunner().invoke(main, ["deploy", "plan", str(path)])
    assert result.exit_code == 1
    assert "delivery.ack_deadline_seconds: must be between 10 and 600" in result.output


def test_the_deploy_guide_follows_the_plan_step_by_step(tmp_path: Path) -> None:
    commands = plan(load_deployment(repository_file(tmp_path)))
    steps = list(dict.fromkeys(c.step for c in commands))
    guide = (ROOT / "docs" / "deploy.md").read_text()
    headings = re.findall(r"^## (\d+)\. (.+)$", guide, flags=re.MULTILINE)
    assert headings == [(str(n), step) for n, step in enumerate(steps, start=1)]


def bindings(commands: list[Command]) -> list[tuple[str, ...]]:
    """(command words, member, role) of every IAM binding, in plan order."""
    found = []
    for c in commands:
        if "add-iam-policy-binding" in c.argv:
            flags = dict(a.removeprefix("--").split("=", 1) for a in c.argv if a.startswith("--"))
            words = c.argv[: c.argv.index("add-iam-policy-binding") + 2]
            found.append((*words, flags["member"], flags["role"]))
    return found


def test_outcomes_get_their_topic_and_the_runner_may_publish_to_it(tmp_path: Path) -> None:
    without = plan(deployment(tmp_path))
    assert not any("ingest-outcomes" in a for c in without for a in c.argv)
    assert "INGEST_OUTCOME_TOPIC" not in " ".join(c.argv[-2] for c in without)
    commands = plan(deployment(tmp_path, outcomes={"topic": "ingest-outcomes"}))
    topics = "Pub/Sub topics and the dead-letter hold subscription"
    assert ["gcloud", "pubsub", "topics", "create", "ingest-outcomes",
            f"--project={PROJECT}"] in argvs(commands, topics)  # fmt: skip
    assert (
        "gcloud", "pubsub", "topics", "add-iam-policy-binding", "ingest-outcomes",
        RUNNER, "roles/pubsub.publisher",
    ) in bindings(commands)  # fmt: skip
    [deploy] = argvs(commands, "Deploy the Cloud Run service")
    assert "INGEST_OUTCOME_TOPIC=ingest-outcomes" in deploy[-2]


def test_pubsub_agent_may_mint_push_tokens_before_any_trigger_exists(tmp_path: Path) -> None:
    commands = plan(deployment(tmp_path))
    token = ("gcloud", "projects", "add-iam-policy-binding", PROJECT, PUBSUB_AGENT,
             "roles/iam.serviceAccountTokenCreator")  # fmt: skip
    assert token in bindings(commands)
    where = {(*c.argv[:4], c.capture or ""): i for i, c in enumerate(commands)}
    number = where[("gcloud", "projects", "describe", PROJECT, "PROJECT_NUMBER")]
    granted = next(i for i, c in enumerate(commands) if "roles/iam.serviceAccountTokenCreator"
                   in " ".join(c.argv))  # fmt: skip
    first_trigger = min(i for i, c in enumerate(commands) if c.argv[:4] == (
        "gcloud", "eventarc", "triggers", "create"))  # fmt: skip
    assert number < granted < first_trigger


def test_the_ledger_listings_get_their_composite_indexes(tmp_path: Path) -> None:
    step = argvs(plan(deployment(tmp_path)), "Firestore ledger database, TTL policy and indexes")
    indexes = [a for a in step if a[2:5] == ["indexes", "composite", "create"]]
    fields = [[f.split(",")[0].removeprefix("--field-config=field-path=") + ":"
               + f.split("order=")[1] for f in a if f.startswith("--field-config")]
              for a in indexes]  # fmt: skip
    assert fields == [
        ["state:ascending", "updated_at:descending"],
        ["pipeline:ascending", "updated_at:descending"],
        ["pipeline:ascending", "state:ascending", "updated_at:descending"],
        ["name_key:ascending", "state:ascending", "generation:descending"],
    ]
    for a in indexes:
        assert {"--collection-group=ingest-ledger", "--database=(default)",
                "--query-scope=collection", f"--project={PROJECT}"} <= set(a)  # fmt: skip


def test_the_build_runs_as_its_own_account_and_carries_the_pipelines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the plan must not depend on where it is run
    commands = plan(deployment(tmp_path))
    builder = f"serviceAccount:ingest-build@{PROJECT}.iam.gserviceaccount.com"
    assert {(b[-2], b[-1]) for b in bindings(commands) if b[-2] == builder} == {
        (builder, "roles/artifactregistry.writer"),
        (builder, "roles/storage.objectViewer"),
        (builder, "roles/logging.logWriter"),
    }
    step = argvs(commands, "Build the image")
    assert ["gcloud", "storage", "buckets", "create", f"gs://{PROJECT}-ingest-build",
            "--location=europe-west1", "--uniform-bucket-level-access",
            f"--project={PROJECT}"] in step  # fmt: skip
    assert step[-1] == [
        "gcloud", "builds", "submit", str(ROOT),
        f"--config={ROOT / 'cloudbuild.yaml'}",
        f"--substitutions=_IMAGE={IMAGE},_CONFIG=examples",
        f"--service-account=projects/{PROJECT}/serviceAccounts/"
        f"ingest-build@{PROJECT}.iam.gserviceaccount.com",
        f"--gcs-source-staging-dir=gs://{PROJECT}-ingest-build/source",
        "--region=europe-west1",
        f"--project={PROJECT}",
    ]  # fmt: skip
    # cloudbuild.yaml hands _CONFIG to the Dockerfile's CONFIG, which the image copies.
    build = yaml.safe_load((ROOT / "cloudbuild.yaml").read_text())
    [docker] = build["steps"]
    assert "CONFIG=${_CONFIG}" in docker["args"] and "${_IMAGE}" in docker["args"]
    assert build["options"]["logging"] == "CLOUD_LOGGING_ONLY"
    assert "COPY ${CONFIG}/ config/" in (ROOT / "Dockerfile").read_text()


def test_the_spool_limit_is_half_the_instance_memory_unless_set(tmp_path: Path) -> None:
    def env(**service: object) -> str:
        [deploy] = argvs(
            plan(deployment(tmp_path, service=service)), "Deploy the Cloud Run service"
        )
        return deploy[-2]

    assert env(memory="512Mi").endswith(",INGEST_SPOOL_MAX_BYTES=268435456")
    assert env(memory="4Gi").endswith(",INGEST_SPOOL_MAX_BYTES=2147483648")
    assert env(env={"INGEST_SPOOL_MAX_BYTES": 1000}).count("INGEST_SPOOL_MAX_BYTES") == 1
