"""The layering of docs/architecture.md, checked on the code: who may import what.

Each rule reads every module of ``service/`` with ``ast`` (nothing is imported or run), so a
change that breaks a layer fails here with the module and the line, not in review.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVICE = ROOT / "service"
# The pipeline's stages: each is composed by runner.py and never imports another.
STAGES = frozenset(
    {"extract", "parse", "transform", "spool", "load", "stream_load", "uri_load", "quarantine"}
)
# Google's client libraries (SDKs): only the GCP adapters talk to Google's APIs.
SDK_PREFIXES = ("google.cloud", "google.api_core")
# Modules longer than this say why in their docstring ("Longer than 300 lines: ...").
MAX_LINES = 300


def modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(SERVICE.rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        yield name.removesuffix(".__init__"), ast.parse(path.read_text(), str(path))


def imports(tree: ast.Module) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"


def breaches(allowed: Callable[[str], bool], forbidden: tuple[str, ...]) -> list[str]:
    """``module:line imported`` for every import of ``forbidden`` outside ``allowed(module)``."""
    found = []
    for name, tree in modules():
        if allowed(name):
            continue
        for line, imported in imports(tree):
            if imported.startswith(forbidden):
                found.append(f"{name}:{line} {imported}")
    return sorted(set(found))


def test_google_sdks_are_imported_only_by_the_gcp_adapters() -> None:
    assert breaches(lambda m: m.startswith("service.adapters.gcp"), SDK_PREFIXES) == []


def test_google_auth_is_used_only_to_verify_tokens_and_by_the_adapters() -> None:
    # service.auth verifies the OIDC tokens Pub/Sub and Eventarc send (google.auth.jwt).
    def allowed(m: str) -> bool:
        return m == "service.auth" or m.startswith("service.adapters.gcp")

    assert breaches(allowed, ("google.auth", "google.oauth2")) == []


def test_only_the_wiring_module_picks_adapters() -> None:
    def allowed(m: str) -> bool:
        return m == "service.wiring" or m.startswith("service.adapters")

    assert breaches(allowed, ("service.adapters",)) == []


def test_decoding_knows_no_backend() -> None:
    # service/events turns HTTP into typed events: no ledger, pipeline, adapter or route.
    forbidden: tuple[str, ...] = ("service.adapters", "service.ledger", "service.ingest")
    forbidden += ("service.pipeline", "service.routes", "service.wiring", "service.runtime")
    assert breaches(lambda m: not m.startswith("service.events"), forbidden) == []


def test_stages_never_import_each_other() -> None:
    found = []
    for name, tree in modules():
        package, _, stage = name.rpartition(".")
        if package != "service.pipeline" or stage not in STAGES:
            continue
        for line, imported in imports(tree):
            other = imported.removeprefix("service.pipeline.").split(".")[0]
            if imported.startswith("service.pipeline.") and other in STAGES - {stage}:
                found.append(f"{name}:{line} {imported}")
    assert found == []


def test_the_command_line_and_replay_never_import_the_routes() -> None:
    def allowed(m: str) -> bool:
        return not m.startswith(("service.cli", "service.replay"))

    assert breaches(allowed, ("service.routes",)) == []


def test_only_settings_reads_the_environment() -> None:
    found = []
    for name, tree in modules():
        if name == "service.settings":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv"):
                found.append(f"{name}:{node.lineno}")
            # click reads a variable itself for an option given envvar= (or a prefix for all).
            if isinstance(node, ast.Call) and any(
                k.arg in ("envvar", "auto_envvar_prefix") for k in node.keywords
            ):
                found.append(f"{name}:{node.lineno} envvar")
    assert found == []


@pytest.mark.parametrize("path", sorted(SERVICE.rglob("*.py")), ids=lambda p: str(p.name))
def test_a_long_module_says_why_in_its_docstring(path: Path) -> None:
    text = path.read_text()
    if text.count("\n") <= MAX_LINES:
        return
    doc = ast.get_docstring(ast.parse(text)) or ""
    assert "Longer than" in doc, f"{path.relative_to(ROOT)}: over {MAX_LINES} lines, no reason"
