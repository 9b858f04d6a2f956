"""tree_digest: the same build inputs give the same tag; any change to one of them gives a new one,
and a change to a file the build does not read gives none."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from ansible_collections.tengen.ops.plugins.lookup.tree_digest import tree_digest

from tests.module_runner import template

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "Dockerfile").write_text("FROM base\nCOPY pkg /app/pkg\n")
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


def test_files_the_build_does_not_read_leave_the_digest_alone(tree):
    before = tree_digest(str(tree))
    (tree / "README.md").write_text("notes\n")
    (tree / "Dockerfile.other").write_text("FROM other\nCOPY . /\n")
    assert tree_digest(str(tree)) == before
    assert tree_digest(str(tree), dockerfile="Dockerfile.other") != before
    (tree / "Dockerfile").write_text("FROM base\nCOPY pkg /app/pkg\nUSER 1000\n")
    assert tree_digest(str(tree)) != before, "the Dockerfile itself is read"


def test_dockerignore_rules_are_dockers(tree):
    (tree / ".dockerignore").write_text("# docs\n**/*.md\npkg/cache\n!pkg/KEEP.md\n")
    (tree / "pkg" / "cache").mkdir()
    before = tree_digest(str(tree))
    (tree / "pkg" / "notes.md").write_text("ignored at any depth\n")
    (tree / "pkg" / "cache" / "blob").write_text("under an ignored directory\n")
    assert tree_digest(str(tree)) == before
    (tree / "pkg" / "KEEP.md").write_text("an exception to **/*.md\n")
    assert tree_digest(str(tree)) != before


def test_copy_forms_and_stages(tmp_path):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "a.conf").write_text("a\n")
    (tmp_path / "conf" / "b.txt").write_text("b\n")
    (tmp_path / "index.html").write_text("<p>\n")
    (tmp_path / "Dockerfile").write_text(
        "FROM base AS build\n"
        "COPY --from=build /out /out\n"
        'COPY ["index.html", "/srv/"]\n'
        "ADD --chown=1:1 conf/*.conf \\\n    https://example.invalid/x.tar /etc/\n"
    )
    before = tree_digest(str(tmp_path))
    (tmp_path / "conf" / "b.txt").write_text("not matched by the wildcard\n")
    assert tree_digest(str(tmp_path)) == before
    for read in ("index.html", "conf/a.conf"):
        (tmp_path / read).write_text("changed\n")
        assert tree_digest(str(tmp_path)) != before
        before = tree_digest(str(tmp_path))


def test_an_unresolvable_source_hashes_the_whole_context(tree):
    (tree / "Dockerfile").write_text("FROM base\nARG SRC=pkg\nCOPY $SRC /app\n")
    before = tree_digest(str(tree))
    (tree / "README.md").write_text("may be what $SRC names\n")
    assert tree_digest(str(tree)) != before


@pytest.mark.parametrize("context", ["app", "engine"])
def test_a_readme_edit_in_the_service_contexts_makes_no_release(context, tmp_path):
    copy = tmp_path / context
    shutil.copytree(REPO / "files" / context, copy)
    before = tree_digest(str(copy))
    (copy / "README.md").write_text((copy / "README.md").read_text() + "\nOne more line.\n")
    assert tree_digest(str(copy)) == before
    (copy / "Dockerfile").write_text((copy / "Dockerfile").read_text() + "\n# one more line\n")
    assert tree_digest(str(copy)) != before


def test_lookup_through_ansible(tree, tmp_path_factory):
    """The plugin as a play loads it: by its FQCN, with its length option."""
    other = tmp_path_factory.mktemp("other")
    (other / "f").write_text("x")
    expr = f"{{{{ lookup('tengen.ops.tree_digest', '{tree}', '{other}', length=8, wantlist=true) }}}}"
    msg = template(expr)
    assert msg == [tree_digest(str(tree), 8), tree_digest(str(other), 8)]


def test_missing_directory_fails(tmp_path):
    with pytest.raises(FileNotFoundError):
        tree_digest(str(tmp_path / "absent"))
