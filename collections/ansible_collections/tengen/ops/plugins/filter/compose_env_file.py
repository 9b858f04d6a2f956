"""A Compose env_file from a dict, every value written so that Compose reads it back unchanged."""

from __future__ import annotations

import re
from typing import Any

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: compose_env_file
short_description: Render a dict as a Docker Compose env_file whose values survive as written
version_added: 0.1.0
description:
  - Returns one C(NAME='value') line per item, in the order of the dict. Single-quoted values are
    literal in Compose's env_file syntax (no interpolation, no comment, no trimming), so C(#),
    C($), C(${X}), double quotes, C(=), backslashes and leading or trailing spaces reach the
    container as they are; a single quote is escaped as C(\\').
  - A value that single quotes cannot hold (a line break, a backslash right before a single
    quote or at the end) is double-quoted instead, with its backslashes, double quotes, dollar
    signs and line breaks escaped.
  - Fails, naming the variable but never showing its value, when a name is not a valid
    environment variable name or a value holds a NUL.
  - Numbers are written as text; C(true) and C(false) as C(true) and C(false); C(None) as empty.
options:
  _input:
    description: Names and values of the environment, in the order they are to be written.
    type: dict
    required: true
  variable:
    description: The variable the environment comes from, named at the start of every error.
    type: str
    default: compose_env_file
"""

EXAMPLES = r"""
- name: Render the backend's environment
  ansible.builtin.copy:
    content: "{{ {'TENGEN_PORT': 8000, 'SECRET': vault_secret} | tengen.ops.compose_env_file }}"
    dest: /opt/tengen/backend.env
    mode: "0600"
  no_log: true
"""

RETURN = r"""
_value:
  description: The env_file text, one line per item, each line ending with a newline.
  type: str
"""

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _text(where: str, name: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    raise AnsibleFilterError(f"{where}: {name} is a {type(value).__name__}, not a string or a number")


def _single_quoted(value: str) -> str | None:
    """`value` in single quotes, or None when Compose would not read it back from them.

    Compose takes a quote after a backslash as escaped: a value holding a backslash right before
    a quote, or ending with one, cannot be single-quoted; nor can a line break.
    """
    if "\\'" in value or value.endswith("\\") or "\n" in value or "\r" in value:
        return None
    return "'" + value.replace("'", "\\'") + "'"


def _double_quoted(value: str) -> str:
    """`value` in double quotes, every backslash, quote, dollar sign and line break escaped."""
    for char, escaped in (("\\", "\\\\"), ('"', '\\"'), ("$", "\\$"), ("\n", "\\n"), ("\r", "\\r")):
        value = value.replace(char, escaped)
    return f'"{value}"'


def compose_env_line(name: Any, value: Any, where: str = "compose_env_file") -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise AnsibleFilterError(f"{where}: {name!r} is not an environment variable name")
    text = _text(where, name, value)
    if "\0" in text:
        # The value itself stays out of the message: it may be a secret.
        raise AnsibleFilterError(f"{where}: the value of {name} holds a NUL, which no environment can")
    quoted = _single_quoted(text)
    return f"{name}={quoted if quoted is not None else _double_quoted(text)}"


def compose_env_file(environment: Any, variable: str = "compose_env_file") -> str:
    if not isinstance(environment, dict):
        raise AnsibleFilterError(f"{variable}: expects a dict, got {type(environment).__name__}")
    return "".join(compose_env_line(name, value, variable) + "\n" for name, value in environment.items())


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"compose_env_file": compose_env_file}
