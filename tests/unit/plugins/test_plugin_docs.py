"""Every module and plugin of the collection documents itself in YAML that parses, as ansible-doc
and ansible-lint read it (a colon in a plain line breaks the whole document)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

PLUGINS = (
    Path(__file__).resolve().parents[3] / "collections" / "ansible_collections" / "tengen" / "ops" / "plugins"
)
DOCUMENTED = sorted(
    p
    for kind in ("modules", "lookup", "filter", "action")
    for p in (PLUGINS / kind).glob("*.py")
    if p.stem != "__init__"
)


def doc_strings(path: Path) -> dict[str, str]:
    found = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id in ("DOCUMENTATION", "EXAMPLES", "RETURN"):
                    found[target.id] = node.value.value
    return found


@pytest.mark.parametrize("path", DOCUMENTED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_the_documentation_parses(path: Path) -> None:
    docs = doc_strings(path)
    if path.parent.name == "modules":
        assert set(docs) == {"DOCUMENTATION", "EXAMPLES", "RETURN"}, (
            f"{path.name} lacks some of its documentation"
        )
    for name, text in docs.items():
        try:
            yaml.safe_load(text)
        except yaml.YAMLError as exc:
            pytest.fail(f"{path.name} {name}: {exc}")
