"""The README's configuration table documents every setting the service reads."""

from __future__ import annotations

from service.settings import reference
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
