"""constraints.txt: every declared dependency is pinned, every pin fits pyproject's ranges, and the
environment under test is the one the pins describe (README commands, .ci/run and tox install with -c)."""
from __future__ import annotations

import os
import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent


def _name(text: str) -> str:
    return re.sub(r"[-_.]+", "-", text).lower()


def _pins() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin"
            pins[_name(name)] = Version(version.split("+")[0])
    return pins


def _requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    texts = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    return [Requirement(text) for text in texts]


def test_every_declared_dependency_is_pinned_within_its_range():
    pins = _pins()
    for requirement in _requirements():
        name = _name(requirement.name)
        assert name in pins, f"{requirement.name} is declared in pyproject.toml but not pinned in constraints.txt"
        assert requirement.specifier.contains(pins[name], prereleases=True), \
            f"constraints.txt pins {name}=={pins[name]}, outside pyproject's {requirement}"


@pytest.mark.skipif(os.environ.get("TALKBENCH_UNCONSTRAINED") == "1",
                    reason="bash .ci/refresh-constraints tests newer versions before pinning them")
def test_the_environment_under_test_has_the_pinned_versions():
    wrong = []
    for name, pinned in _pins().items():
        try:
            installed = Version(metadata.version(name).split("+")[0])
        except metadata.PackageNotFoundError:
            continue  # pins may cover platform-specific packages this machine does not need
        if installed != pinned:
            wrong.append(f"{name} {installed} (pinned {pinned})")
    assert not wrong, ("installed versions differ from constraints.txt; install with "
                       f"`pip install -c constraints.txt ...` as the README does: {', '.join(wrong)}")
