"""The shared reader: every way a file can be unusable is one ConfigError line naming it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from service.errors import ConfigError, PermanentError
from service.typed_reader import Section, load_json, load_toml, load_yaml, read_text


def one_line_error(call: object, *args: object) -> str:
    assert callable(call)
    with pytest.raises(ConfigError) as caught:
        call(*args)
    text = str(caught.value)
    assert isinstance(caught.value, PermanentError)
    assert "\n" not in text
    return text


def test_a_missing_file_is_named_with_the_hint(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    text = one_line_error(read_text, path, "pipelines file", " (set X)")
    assert text == f"{path}: pipelines file not found (set X)"


def test_a_directory_is_named(tmp_path: Path) -> None:
    text = one_line_error(load_toml, tmp_path, "pipelines file")
    assert text == f"{tmp_path}: is a directory, not a pipelines file"


@pytest.mark.parametrize("load", [load_toml, load_yaml, load_json])
def test_a_file_that_is_not_utf8_is_named(tmp_path: Path, load: object) -> None:
    path = tmp_path / "latin1.conf"
    path.write_bytes("name = 'caf\u00e9'\n".encode("latin-1"))
    text = one_line_error(load, path, "some file")
    assert text == f"{path}: some file is not UTF-8 text (byte 11)"


@pytest.mark.parametrize(
    ("load", "body", "language"),
    [(load_toml, "[[x]\n", "TOML"), (load_yaml, "a: [\n", "YAML"), (load_json, "{", "JSON")],
)
def test_a_file_that_does_not_parse_is_named(
    tmp_path: Path, load: object, body: str, language: str
) -> None:
    path = tmp_path / "broken"
    path.write_text(body)
    assert one_line_error(load, path, "file").startswith(f"{path}: not valid {language}: ")


def test_a_yaml_file_must_be_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n")
    assert one_line_error(load_yaml, path, "file") == f"{path}: the file: must be a mapping"


def section(
    raw: object, *, numbers_as_text: bool = False, known: set[str] | None = None
) -> Section:
    return Section(Path("f.yaml"), "top.", raw, numbers_as_text=numbers_as_text, known=known)


def test_typed_look_ups_name_the_field() -> None:
    s = section({"n": True, "s": 2, "none": None})
    with pytest.raises(ConfigError, match=r"^f.yaml: top.n: must be an int, not bool$"):
        s.get("n", int)
    with pytest.raises(ConfigError, match=r"^f.yaml: top.s: must be a str, not int$"):
        s.get("s", str)
    with pytest.raises(ConfigError, match=r"^f.yaml: top.none: is required$"):
        s.get("none", str, required=True)
    assert s.get("absent", str, "default") == "default"


def test_numbers_stand_for_text_only_when_asked() -> None:
    assert section({"cpu": 2}, numbers_as_text=True).get("cpu", str) == "2"


def test_choices_names_numbers_and_sections() -> None:
    s = section({"mode": "x", "name": "ok\n", "count": 7, "sub": None, "bad": 1})
    with pytest.raises(ConfigError, match=r"top.mode: must be a or b$"):
        s.choice("mode", ("a", "b"))
    assert section({}).choice("mode", ("a", "b")) == "a"
    with pytest.raises(ConfigError, match=r"top.name: 'ok\\n' is not a valid name"):
        s.named("name", re.compile("^[a-z]+$"))
    with pytest.raises(ConfigError, match=r"top.count: must be between 1 and 5"):
        s.number("count", 1, 1, 5)
    assert s.section("sub").raw == {}  # an empty YAML `sub:` is null
    with pytest.raises(ConfigError, match=r"top.bad: must be a dict, not int"):
        s.section("bad")
    with pytest.raises(ConfigError, match=r"top.sub.zz: unknown option \(known: a, b\)"):
        section({"sub": {"zz": 1}}).section("sub").unknown_keys({"a", "b"})


def test_an_unknown_key_names_the_closest_known_one() -> None:
    with pytest.raises(
        ConfigError, match=r"^f.yaml: top.max_ratoi: unknown option, did you mean `max_ratio`\?$"
    ):
        section({"max_ratoi": 0.25}, known={"max_count", "max_ratio", "quarantine"})
    with pytest.raises(ConfigError, match=r"top.zzz: unknown option \(known: a, b\)$"):
        section({"zzz": 1}, known={"a", "b"})


def test_a_sub_section_with_known_keys_is_checked_when_made() -> None:
    s = section({"service": {"servcie": {}}})
    with pytest.raises(ConfigError, match=r"top.service.servcie: unknown option, did you mean"):
        s.section("service", known={"service", "name"})
    assert s.section("absent", known={"a"}).raw == {}


def test_reading_a_key_outside_the_known_ones_is_a_programming_error() -> None:
    s = section({"a": 1}, known={"a"})
    assert s.get("a", int) == 1
    with pytest.raises(LookupError, match=r"top\.b: read but not among the section's known keys"):
        s.get("b", int)
