"""Reading a configuration file into typed values, every error one line naming file and field.

Shared by the pipelines file (TOML), its schema files (JSON), the deployment file (YAML) and
Hypercorn's configuration: a file that is missing, a directory, unreadable, not UTF-8 or not
parseable becomes a ``ConfigError`` (never a traceback), and ``Section`` gives checked look-ups.
A ``Section`` given its ``known`` keys refuses any other key at once, naming the closest known one
(a typo would otherwise fall back silently to the option's default).
"""

from __future__ import annotations

import difflib
import json
import re
import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

from service.errors import ConfigError


def read_text(path: Path, what: str, hint: str = "") -> str:
    """The file's text; ``what`` names the file's role, ``hint`` says where its path is set."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: {what} not found{hint}") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"{path}: is a directory, not a {what}{hint}") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what}: {exc.strerror or exc}{hint}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: {what} is not UTF-8 text (byte {exc.start})") from exc


def load_toml(
    path: Path, what: str, hint: str = "", *, known: Iterable[str] | None = None
) -> Section:
    raw = _parse(path, what, tomllib.loads, tomllib.TOMLDecodeError, language="TOML", hint=hint)
    return Section(path, "", raw, known=known)


def load_yaml(path: Path, what: str, *, known: Iterable[str] | None = None) -> Section:
    raw = _parse(path, what, yaml.safe_load, yaml.YAMLError, language="YAML")
    return Section(path, "", raw, numbers_as_text=True, known=known)


def load_json(path: Path, what: str) -> Any:
    return _parse(path, what, json.loads, json.JSONDecodeError, language="JSON")


def _parse(
    path: Path,
    what: str,
    parse: Callable[[str], Any],
    error: type[Exception],
    *,
    language: str,
    hint: str = "",
) -> Any:
    text = read_text(path, what, hint)
    try:
        return parse(text)
    except error as exc:
        detail = " ".join(str(exc).split())  # YAML's message spans lines
        raise ConfigError(f"{path}: not valid {language}: {detail}") from exc


class Section:
    """One mapping of a file, with typed look-ups whose errors say where.

    ``where`` prefixes every field name in errors (``pipeline 'orders': `` or ``delivery.``).
    ``numbers_as_text``: a number may stand for a string (YAML reads ``cpu: 2`` as a number).
    ``known``: the keys the section may hold; any other is refused when the section is made, and
    reading a key outside them is a programming error (so the set is exactly what is read).
    """

    def __init__(
        self,
        path: Path,
        where: str,
        raw: Any,
        *,
        numbers_as_text: bool = False,
        known: Iterable[str] | None = None,
    ) -> None:
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: {where.rstrip(': .') or 'the file'}: must be a mapping")
        self.path = path
        self.where = where
        self.raw: dict[str, Any] = raw
        self.numbers_as_text = numbers_as_text
        self.known = None if known is None else frozenset(known)
        if self.known is not None:
            self.unknown_keys(self.known)

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.path}: {self.where}{key}: {message}")

    def get(self, key: str, kind: type, default: Any = None, *, required: bool = False) -> Any:
        """The value of ``key`` (``default`` when absent), which must be a ``kind``."""
        if self.known is not None and key not in self.known:
            raise LookupError(f"{self.where}{key}: read but not among the section's known keys")
        value = self.raw.get(key, default)
        if value is None:
            if required:
                raise self.fail(key, "is required")
            return None
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if kind is str and number and self.numbers_as_text:
            value = str(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            article = "an" if kind.__name__[0] in "aeiou" else "a"
            raise self.fail(key, f"must be {article} {kind.__name__}, not {type(value).__name__}")
        return value

    def choice(self, key: str, allowed: tuple[str, ...]) -> Any:
        """One of ``allowed``; the first is the default."""
        value: str = self.get(key, str, allowed[0])
        if value not in allowed:
            raise self.fail(key, f"must be {' or '.join(allowed)}")
        return value

    def named(self, key: str, pattern: re.Pattern[str], default: str | None = None) -> str:
        value: str = self.get(key, str, default, required=True)
        if not pattern.fullmatch(value):
            raise self.fail(key, f"{value!r} is not a valid name")
        return value

    def number(self, key: str, default: int, low: int, high: int) -> int:
        value: int = self.get(key, int, default)
        if not low <= value <= high:
            raise self.fail(key, f"must be between {low} and {high}")
        return value

    def section(
        self, key: str, where: str | None = None, *, known: Iterable[str] | None = None
    ) -> Section:
        """The mapping under ``key`` (empty when absent); its errors say ``where`` (key.)."""
        prefix = f"{self.where}{key}." if where is None else where
        raw = self.get(key, dict) or {}  # YAML reads an empty `key:` as null
        return Section(self.path, prefix, raw, numbers_as_text=self.numbers_as_text, known=known)

    def unknown_keys(self, known: Iterable[str]) -> None:
        """Refuses the first key not in ``known``, suggesting the closest known one."""
        allowed = frozenset(known)
        for key in self.raw:
            if key not in allowed:
                raise self.fail(str(key), unknown_option(str(key), allowed))


def unknown_option(word: str, known: Iterable[str]) -> str:
    """Why ``word`` is refused: the closest of ``known``, or the list when none is close."""
    choices = sorted(known)
    close = closest(word, choices)
    if close is not None:
        return f"unknown option, did you mean `{close}`?"
    return f"unknown option (known: {', '.join(choices)})" if choices else "unknown option"


def closest(word: str, known: Iterable[str]) -> str | None:
    """The known word ``word`` most likely misspells (difflib's similarity, 0.6 or more)."""
    close = difflib.get_close_matches(word, sorted(known), n=1, cutoff=0.6)
    return close[0] if close else None
