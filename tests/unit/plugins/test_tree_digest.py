"""tree_digest: the same tree gives the same tag; any change to a file gives a new one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ansible_collections.tengen.ops.plugins.lookup.tree_digest import tree_digest

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "Dockerfile").write_text("FROM base\n")
    (tmp_path / "pkg" / "app.py").write_text("print('hi')\n")
    return tmp_path


def test_stable_and_short(tree):
    first = tree_digest(str(tree))
    assert first == tree_digest(str(tree))
    assert len(first) == 12
    assert int(first, 16) >= 0


def test_content_change_changes_digest(tree):
    before = tree_digest(str(tree))
    (tree / "pkg" / "app.py").write_text("print('bye')\n")
    assert tree_digest(str(tree)) != before


def test_rename_and_mode_change_digest(tree):
    before = tree_digest(str(tree))
    (tree / "pkg" / "app.py").rename(tree / "pkg" / "main.py")
    renamed = tree_digest(str(tree))
    assert renamed != before
    os.chmod(tree / "pkg" / "main.py", 0o755)
    assert tree_digest(str(tree)) != renamed


def test_caches_are_ignored(tree):
    before = tree_digest(str(tree))
    (tree / "pkg" / "__pycache__").mkdir()
    (tree / "pkg" / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"\0\1")
    (tree / "pkg" / "other.pyc").write_bytes(b"\0")
    assert tree_digest(str(tree)) == before


def test_lookup_through_ansible(tree, tmp_path_factory):
    """The plugin as a play loads it: by its FQCN, with its length option."""
    other = tmp_path_factory.mktemp("other")
    (other / "f").write_text("x")
    expr = f"{{{{ lookup('tengen.ops.tree_digest', '{tree}', '{other}', length=8, wantlist=true) }}}}"
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible"),
            "localhost",
            "-i",
            "localhost,",
            "-c",
            "local",
            "-m",
            "ansible.builtin.debug",
            "-a",
            f"msg={expr}",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={
            **os.environ,
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
            "ANSIBLE_STDOUT_CALLBACK": "json",
            "ANSIBLE_LOAD_CALLBACK_PLUGINS": "true",
        },
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The per-task timer of ansible.cfg prints around the JSON document.
    document, _ = json.JSONDecoder().raw_decode(proc.stdout[proc.stdout.index("{") :])
    msg = document["plays"][0]["tasks"][0]["hosts"]["localhost"]["msg"]
    assert msg == [tree_digest(str(tree), 8), tree_digest(str(other), 8)]


def test_missing_directory_fails(tmp_path):
    with pytest.raises(FileNotFoundError):
        tree_digest(str(tmp_path / "absent"))
