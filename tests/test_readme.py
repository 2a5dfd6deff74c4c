"""The README's configuration table documents every setting the service reads."""

from __future__ import annotations

import re
from dataclasses import fields

import click

from service.cli import main
from service.settings import Settings, reference
from tests.conftest import ROOT


def test_every_setting_is_in_the_readme_table() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [name for name, _, _ in reference() if f"`{name}`" not in readme]
    assert missing == []


def test_readme_names_both_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "scripts/demo" in readme
    assert "scripts/test" in readme
    assert (ROOT / ".ci" / "run").read_text().strip().endswith("exec scripts/test")


def bash_lines(readme: str) -> list[str]:
    """Every line of the README's ```bash blocks, comments dropped."""
    blocks = re.findall(r"```bash\n(.*?)```", readme, flags=re.DOTALL)
    lines = [
        re.sub(r"\s#\s.*$", "", line).strip() for block in blocks for line in block.splitlines()
    ]
    return [line for line in lines if line]


def ingest_calls(line: str) -> list[str]:
    """The ``ingest ...`` commands of a line (a pipe into another ingest starts a new one)."""
    return [
        part.strip()
        for part in re.split(r"\|\s*(?=ingest\b)", line)
        if part.strip().startswith("ingest ")
    ]


def test_every_documented_command_and_option_exists() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    calls = [call for line in bash_lines(readme) for call in ingest_calls(line)]
    assert len(calls) > 20
    unknown = []
    for call in calls:
        command: click.Command = main
        words = call.split()[1:]
        while isinstance(command, click.Group) and words and words[0] in command.commands:
            command = command.commands[words.pop(0)]
        known = {opt for p in command.params for opt in p.opts} | {"--help", "--version"}
        unknown += [
            f"{call}: {o}"
            for o in re.findall(r"(?<![\w-])--?[a-z][\w-]*", " ".join(words))
            if o not in known
        ]
    assert unknown == []


def test_after_the_demo_the_readme_says_how_to_go_on() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    after = readme.split("**After the demo**", 1)[1].split("```", 2)[1]
    assert "source .venv/bin/activate" in after and ".venv/bin/ingest" in after
    demo = (ROOT / "scripts" / "demo").read_text()
    # Every setting the demo gives a value is set the same way here, or is that default.
    chosen = dict(re.findall(r'export (INGEST_\w+)="\$\{\1:-([^}]*)\}"', demo))
    assert chosen.keys() >= {"INGEST_DATA_DIR", "INGEST_PIPELINES"}
    defaults = {f.metadata["env"]: str(f.default) for f in fields(Settings)}
    for name, value in chosen.items():
        if name == "INGEST_LOG_FORMAT":
            continue  # the demo's own output, not where anything is found
        assert f"{name}={value}" in after or defaults[name] == value, name
    assert "source .venv/bin/activate" in demo  # the demo prints the same two lines at its end
