"""The audit trail of a tengen host: one JSON object a line, appended under a lock, size-bounded.

Every release, rollback, restore and maintenance switch appends one entry (who, when, what, the
outcome, the release id). Writers take an exclusive lock on a lock file beside the trail, so two
runs never interleave a line or rotate under each other; a line is written with one write() on
an O_APPEND descriptor and fsynced. When the trail would grow over ``max_bytes`` it is renamed
to ``.1`` (``.1`` to ``.2``, ...) and ``keep`` old files stay.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
from collections.abc import Mapping
from typing import Any

ACTIONS = (
    "site",
    "release",
    "rollback",
    "restore",
    "maintenance on",
    "maintenance off",
    "cutover",
    "cutover rollback",
)
OUTCOMES = ("ok", "failed", "rolled back")
FILE_MODE = 0o640
DIR_MODE = 0o750


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_entry(
    *,
    action: str,
    outcome: str,
    controller_user: str,
    controller: str,
    ansible_user: str,
    release: str | None = None,
    playbook: str = "",
    detail: str = "",
    when: str | None = None,
) -> dict[str, Any]:
    """One entry of the trail, or ValueError naming the bad field."""
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {', '.join(ACTIONS)} (got {action!r})")
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)} (got {outcome!r})")
    # One line each: a detail from an error message may hold newlines.
    return {
        "time": when or utc_now(),
        "controller_user": controller_user or "?",
        "controller": controller or "?",
        "ansible_user": ansible_user or "?",
        "action": action,
        "outcome": outcome,
        "release": release or None,
        "playbook": playbook,
        "detail": " ".join(str(detail).split())[:500],
    }


def _rotate(path: str, keep: int) -> None:
    for n in range(keep, 0, -1):
        older = f"{path}.{n}"
        if n == keep:
            if os.path.exists(older):
                os.unlink(older)
            continue
        if os.path.exists(older):
            os.rename(older, f"{path}.{n + 1}")
    if keep > 0:
        os.rename(path, f"{path}.1")
    else:
        os.unlink(path)


def append(path: str, entry: Mapping[str, Any], max_bytes: int = 1048576, keep: int = 4) -> dict[str, Any]:
    """Append ``entry`` as one line; returns what was done (rotated or not, the line's size)."""
    line = (json.dumps(dict(entry), sort_keys=True, separators=(",", ":")) + "\n").encode()
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=DIR_MODE, exist_ok=True)
    lock_fd = os.open(f"{path}.lock", os.O_WRONLY | os.O_CREAT, FILE_MODE)
    rotated = False
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        try:
            size = os.path.getsize(path)
        except FileNotFoundError:
            size = 0
        if size and size + len(line) > max_bytes:
            _rotate(path, keep)
            rotated = True
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)  # also when an earlier file was made with looser bits
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
    finally:
        os.close(lock_fd)
    return {"rotated": rotated, "bytes": len(line)}


def tail(path: str, count: int) -> list[dict[str, Any]]:
    """The last ``count`` entries, oldest first (a line that is not a JSON object is skipped)."""
    if count <= 0:
        return []
    lines: list[bytes] = []
    for name in (path, f"{path}.1"):  # the newest entries may have just moved to .1
        try:
            with open(name, "rb") as handle:
                lines = handle.read().splitlines() + lines
        except FileNotFoundError:
            continue
        if len(lines) >= count:
            break
    out: list[dict[str, Any]] = []
    for raw in lines:
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        if isinstance(entry, dict):
            out.append(entry)
    return out[-count:]
