"""Lookup: a short, stable digest of a directory tree on the controller (an image's build context)."""

from __future__ import annotations

import hashlib
import os
from typing import Any

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

DOCUMENTATION = r"""
name: tree_digest
short_description: Digest of a build context, for immutable image tags
version_added: 0.1.0
description:
  - Hashes every file of a directory on the controller (relative path, mode and content, in sorted
    order) and returns the first I(length) hex digits of the SHA-256. The same tree always gives the same
    digest and any change to a file gives a new one, so an image built from the tree can be tagged
    with it and the tag never has to be reused for different content.
  - Python caches and test leftovers (C(__pycache__), C(*.pyc), C(.pytest_cache)) are left out.
options:
  _terms:
    description: Directories to hash (one digest each).
    required: true
  length:
    description: How many hex digits to return.
    type: int
    default: 12
"""

EXAMPLES = r"""
- name: Tag the backend image after its build context
  ansible.builtin.debug:
    msg: "tengen/backend:{{ lookup('tengen.ops.tree_digest', playbook_dir ~ '/files/app') }}"
"""

RETURN = r"""
_raw:
  description: One hex digest per directory.
  type: list
  elements: str
"""

_SKIP_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".git"}


def tree_digest(root: str, length: int = 12) -> str:
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{root} is not a directory")
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        for name in sorted(filenames):
            if name.endswith((".pyc", ".pyo")):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            executable = os.access(path, os.X_OK)
            digest.update(f"{rel}\0{int(executable)}\0".encode())
            with open(path, "rb") as handle:
                for chunk in iter(lambda h=handle: h.read(65536), b""):
                    digest.update(chunk)
            digest.update(b"\0")
    return digest.hexdigest()[:length]


class LookupModule(LookupBase):
    def run(self, terms: list[Any], variables: dict[str, Any] | None = None, **kwargs: Any) -> list[str]:
        self.set_options(var_options=variables, direct=kwargs)
        length = self.get_option("length")
        try:
            return [tree_digest(str(term), length) for term in terms]
        except OSError as exc:
            raise AnsibleLookupError(f"tree_digest: {exc}") from exc
