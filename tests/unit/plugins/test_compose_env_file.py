"""The env_file filter: the exact lines it writes, and clear errors that never show a value.

That Compose reads every line back unchanged is checked with the real `docker compose config` in
tests/e2e/test_stack.py (Compose runs in the sandbox VM)."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.tengen.ops.plugins.filter.compose_env_file import compose_env_file


@pytest.mark.parametrize(
    ("value", "line"),
    [
        ("plain", "V='plain'"),
        ("a#b", "V='a#b'"),
        ("'q'", r"V='\'q\''"),
        ('"dq"', "V='\"dq\"'"),
        ("$HOME ${X}", "V='$HOME ${X}'"),
        (r"back\slash", r"V='back\slash'"),
        ("  spaced  ", "V='  spaced  '"),
        ("k=v", "V='k=v'"),
        ("", "V=''"),
        (8000, "V='8000'"),
        (True, "V='true'"),
        (None, "V=''"),
        # What single quotes cannot hold is double-quoted, every special character escaped.
        ("end\\", r'V="end\\"'),
        (r"x\'y", r'''V="x\\'y"'''),
        ('two\nlines "$X"', r'V="two\nlines \"\$X\""'),
    ],
)
def test_each_value_is_quoted_so_that_compose_reads_it_literally(value, line):
    assert compose_env_file({"V": value}) == line + "\n"


def test_errors_name_the_variable_given():
    with pytest.raises(AnsibleFilterError, match="^game_stack_backend_env: 'A B' is not"):
        compose_env_file({"A B": "x"}, "game_stack_backend_env")


def test_the_order_of_the_dict_is_kept():
    assert compose_env_file({"B": "1", "A": "2"}) == "B='1'\nA='2'\n"


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ({"1ABC": "x"}, "'1ABC' is not an environment variable name"),
        ({"A-B": "x"}, "'A-B' is not an environment variable name"),
        ({"SECRET": "hunter\0two"}, "the value of SECRET holds a NUL"),
        ({"SECRET": ["hunter2"]}, "SECRET is a list, not a string or a number"),
        (["SECRET=hunter2"], "expects a dict, got list"),
    ],
)
def test_bad_input_is_refused_without_showing_the_value(environment, expected):
    with pytest.raises(AnsibleFilterError) as raised:
        compose_env_file(environment)
    assert expected in str(raised.value)
    assert "hunter" not in str(raised.value)
