"""Each role's variables are described once and the copies cannot drift: every variable of
defaults/main.yml has an argument spec, every argument spec is named in the role's README, and a
default written in both places is the same value."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

ROLES = sorted(path.parent.parent for path in (REPO / "roles").glob("*/meta/argument_specs.yml"))


def spec_options(role: Path) -> dict[str, dict]:
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    options: dict[str, dict] = {}
    for entry in specs.values():
        for name, option in (entry.get("options") or {}).items():
            options.setdefault(name, option or {})
    return options


def defaults(role: Path) -> dict:
    path = role / "defaults" / "main.yml"
    return (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}


def test_every_role_has_argument_specs() -> None:
    roles = sorted(path for path in (REPO / "roles").iterdir() if (path / "tasks").is_dir())
    assert roles == ROLES


@pytest.mark.parametrize("role", ROLES, ids=lambda role: role.name)
def test_every_default_has_an_argument_spec(role: Path) -> None:
    missing = sorted(set(defaults(role)) - set(spec_options(role)))
    assert missing == [], f"{role.name}: defaults/main.yml sets variables argument_specs does not describe"


@pytest.mark.parametrize("role", ROLES, ids=lambda role: role.name)
def test_every_argument_is_named_in_the_readme(role: Path) -> None:
    readme = (role / "README.md").read_text()
    named = set(re.findall(r"`([a-z][a-z0-9_]*)`", readme))
    missing = sorted(name for name in spec_options(role) if name not in named)
    assert missing == [], f"{role.name}/README.md does not name these variables"


@pytest.mark.parametrize("role", ROLES, ids=lambda role: role.name)
def test_a_default_written_twice_is_the_same(role: Path) -> None:
    values = defaults(role)
    drifted = {
        name: (option["default"], values[name])
        for name, option in spec_options(role).items()
        if "default" in option and name in values and option["default"] != values[name]
    }
    assert drifted == {}, f"{role.name}: argument_specs default != defaults/main.yml"


@pytest.mark.parametrize("role", ROLES, ids=lambda role: role.name)
def test_the_role_prefix_names_every_variable(role: Path) -> None:
    stray = sorted(name for name in spec_options(role) if not name.startswith(f"{role.name}_"))
    assert stray == [], f"{role.name}: variables without the role's prefix"
