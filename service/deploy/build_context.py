"""What Cloud Build is given: this repository as the build context, and the pipelines folder in it.

The image carries the user's pipelines (``Dockerfile``: ``ARG CONFIG``, copied to /app/config/),
so the folder that holds the pipelines file must be inside the context, and ``.dockerignore``
(an allow-list) must let it through; otherwise the plan stops with one line saying so.
``.dockerignore`` is read as Docker reads it: the last matching pattern wins, a match on a parent
directory counts, ``!`` re-includes, ``**`` spans directories.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path

from service.errors import ConfigError

# The repository this code runs from: the Dockerfile, cloudbuild.yaml and .dockerignore are here.
REPOSITORY = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class BuildSource:
    root: Path  # the build context (absolute), where Dockerfile and cloudbuild.yaml are
    config: str  # the pipelines folder, relative to root (the Dockerfile's CONFIG)
    pipelines_name: str  # the pipelines file's name inside that folder

    @property
    def cloudbuild(self) -> Path:
        return self.root / "cloudbuild.yaml"


def build_source(pipelines_file: Path, root: Path = REPOSITORY) -> BuildSource:
    """Where the build finds the pipelines, or a ConfigError that says what to move where."""
    root = root.resolve()
    pipelines_file = pipelines_file.resolve()
    if not (root / "Dockerfile").is_file() or not (root / "cloudbuild.yaml").is_file():
        raise ConfigError(
            f"{root}: no Dockerfile and cloudbuild.yaml here: run `ingest deploy plan` "
            "from a checkout of the repository (pip install -e .)"
        )
    if not pipelines_file.is_relative_to(root) or pipelines_file.parent == root:
        raise ConfigError(
            f"{pipelines_file}: the image is built from {root}: keep the pipelines file and its "
            f"schemas in a folder under it (e.g. {root / 'config'}/) and name that folder "
            "in .dockerignore"
        )
    relative = pipelines_file.relative_to(root).as_posix()
    if not in_context(relative, ignore_patterns(root / ".dockerignore")):
        folder = pipelines_file.parent.relative_to(root).as_posix()
        raise ConfigError(
            f"{root / '.dockerignore'}: leaves {relative} out of the image: add !{folder}/"
        )
    return BuildSource(
        root, pipelines_file.parent.relative_to(root).as_posix(), pipelines_file.name
    )


def ignore_patterns(dockerignore: Path) -> list[tuple[bool, re.Pattern[str]]]:
    """(re-include?, pattern) for each line of a .dockerignore, in order."""
    patterns = []
    for raw in dockerignore.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        glob = line.removeprefix("!").strip().strip("/")
        regex = fnmatch.translate(glob).replace(".*", "[^/]*")
        regex = regex.replace("[^/]*[^/]*/", "(?:.*/)?").replace("[^/]*[^/]*", ".*")
        patterns.append((include, re.compile(regex)))
    return patterns


def in_context(relative: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether ``docker build`` sends the file at ``relative`` (a path below the context)."""
    parts = relative.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for include, pattern in patterns:
        if any(pattern.fullmatch(c) for c in candidates):
            excluded = not include
    return not excluded
