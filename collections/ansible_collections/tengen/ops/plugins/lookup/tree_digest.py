"""Lookup: a short, stable digest of a directory tree on the controller (an image's build context)."""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

DOCUMENTATION = r"""
name: tree_digest
short_description: Digest of what an image build reads, for immutable image tags
version_added: 0.1.0
description:
  - Hashes what C(docker build) reads from a build context on the controller (relative path, mode
    and content of each file, in sorted order) and returns the first I(length) hex digits of the
    SHA-256. The same inputs always give the same digest and a change to any of them gives a new
    one, so an image built from them can be tagged with it and a tag never names two contents.
  - What the build reads is the Dockerfile itself and the local sources of its C(COPY) and C(ADD)
    instructions (wildcards and directories expanded), less what the context's C(.dockerignore)
    excludes, with Docker's pattern rules (C(**), C(!) exceptions, a pattern that matches a
    directory excludes what is under it). An edit to any other file of the context (a README, a
    second Dockerfile) gives the same digest, so it makes no release.
  - Where the Dockerfile is missing or names a source this plugin cannot resolve (a build
    argument, a heredoc), every file of the context that C(.dockerignore) leaves in is hashed; a
    digest may change without need, never stay the same when the build's input changed.
  - Python caches and test leftovers (C(__pycache__), C(*.pyc), C(.pytest_cache)) are left out.
options:
  _terms:
    description: Build context directories (one digest each).
    required: true
  dockerfile:
    description: The Dockerfile's name, relative to each context.
    type: str
    default: Dockerfile
  length:
    description: How many hex digits to return.
    type: int
    default: 12
"""

EXAMPLES = r"""
- name: Tag the backend image after what its build reads
  ansible.builtin.debug:
    msg: "tengen/backend:{{ lookup('tengen.ops.tree_digest', playbook_dir ~ '/files/app') }}"

- name: Tag the GNU Go engine image, built from its own Dockerfile in the engine's context
  ansible.builtin.debug:
    msg: "{{ lookup('tengen.ops.tree_digest', 'files/engine', dockerfile='Dockerfile.gnugo') }}"
"""

RETURN = r"""
_raw:
  description: One hex digest per directory.
  type: list
  elements: str
"""

_SKIP_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".git"}


class _Unresolved(Exception):
    """A COPY or ADD source whose files cannot be told from the Dockerfile alone."""


def _glob_regex(pattern: str, any_depth: bool) -> re.Pattern[str]:
    """Docker's path patterns as a regex: * and ? within one segment, ** (with any_depth) across."""
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if any_depth and pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):  # "**/" also matches no directory at all
                i += 1
                out.append("(?:.*/)?")
            else:
                out.append(".*")
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            close = pattern.find("]", i + 1)
            if close < 0:
                raise _Unresolved(f"pattern {pattern!r}")
            body = pattern[i + 1 : close]
            out.append(
                "[" + ("^" + body[1:] if body.startswith("^") else re.escape(body).replace(r"\-", "-")) + "]"
            )
            i = close
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out))


def _clean(path: str) -> str:
    return os.path.normpath(path.strip().lstrip("/")).replace(os.sep, "/")


class DockerIgnore:
    """The context's .dockerignore, applied as Docker applies it: the last matching pattern wins."""

    def __init__(self, context: str) -> None:
        self.rules: list[tuple[re.Pattern[str], bool]] = []
        try:
            with open(os.path.join(context, ".dockerignore"), encoding="utf-8") as handle:
                lines = handle.read().splitlines()
        except FileNotFoundError:
            return
        for line in lines:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            keep = line.startswith("!")
            pattern = _clean(line[1:] if keep else line)
            if pattern != ".":
                self.rules.append((_glob_regex(pattern, any_depth=True), keep))

    def excludes(self, rel: str) -> bool:
        parts = rel.split("/")
        paths = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        excluded = False
        for regex, keep in self.rules:
            if any(regex.fullmatch(path) for path in paths):
                excluded = not keep
        return excluded


def _context_files(root: str, ignore: DockerIgnore) -> list[str]:
    """Every file of the context that reaches the build, relative and sorted."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS]
        for name in filenames:
            if name.endswith((".pyc", ".pyo")):
                continue
            rel = os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/")
            if not ignore.excludes(rel):
                found.append(rel)
    return sorted(found)


def _instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined."""
    joined, current = [], ""
    for line in dockerfile.splitlines():
        if not current and line.lstrip().startswith("#"):
            continue
        stripped = line.rstrip()
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += line
        if current.strip():
            joined.append(current.strip())
        current = ""
    if current.strip():
        joined.append(current.strip())
    return [(word.upper(), rest) for word, _, rest in (line.partition(" ") for line in joined)]


def _copy_sources(dockerfile: str) -> list[str]:
    """The context paths that the COPY and ADD instructions name (not those from other stages)."""
    sources = []
    for word, args in _instructions(dockerfile):
        if word not in ("COPY", "ADD"):
            continue
        args = args.strip()
        if "<<" in args:
            raise _Unresolved("a heredoc")
        words = args.split()
        flags = [w for w in words if w.startswith("--")]
        if any(flag.startswith("--from") for flag in flags):
            continue
        words = [w for w in words if not w.startswith("--")]
        if args.lstrip("-").startswith("[") or (words and words[0].startswith("[")):
            words = json.loads(args[args.index("[") :])
        for source in words[:-1]:
            if "$" in source:
                raise _Unresolved(f"the source {source!r}")
            if word == "ADD" and re.match(r"^[a-z]+://|^git@", source):
                continue  # fetched at build time, named by the Dockerfile's own text
            sources.append(_clean(source))
    return sources


def build_inputs(root: str, dockerfile: str = "Dockerfile") -> list[str]:
    """The context files that `docker build -f <dockerfile> <root>` reads, relative and sorted."""
    ignore = DockerIgnore(root)
    files = _context_files(root, ignore)
    try:
        with open(os.path.join(root, dockerfile), encoding="utf-8") as handle:
            sources = _copy_sources(handle.read())
    except (FileNotFoundError, _Unresolved, ValueError):
        return files
    read = {_clean(dockerfile)}
    for source in sources:
        if source == ".":
            return files
        regex = _glob_regex(source, any_depth=False)
        for rel in files:
            parts = rel.split("/")
            if any(regex.fullmatch("/".join(parts[: n + 1])) for n in range(len(parts))):
                read.add(rel)
    return sorted(read)


def tree_digest(root: str, length: int = 12, dockerfile: str = "Dockerfile") -> str:
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{root} is not a directory")
    digest = hashlib.sha256()
    for rel in build_inputs(root, dockerfile):
        path = os.path.join(root, rel)
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
        dockerfile = self.get_option("dockerfile")
        try:
            return [tree_digest(str(term), length, dockerfile) for term in terms]
        except OSError as exc:
            raise AnsibleLookupError(f"tree_digest: {exc}") from exc
