#!/usr/bin/python
"""Module: the lock that lets one run at a time change a tengen host (the host side of change_lock)."""

from __future__ import annotations

import fcntl
import json
import os
from typing import Any

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: change_lock
short_description: Let one playbook run at a time change a tengen host
version_added: 0.1.0
description:
  - A lock file on the managed host names the run that is changing it (user, controller, process,
    playbook, since when). C(site.yml), C(deploy.yml), C(restore.yml) and C(maintenance.yml) take it
    first and give it back last, so that two runs never pick the same release slot or restore under a
    release.
  - The controller side (the action plugin of the same name) identifies the run by its
    C(ansible-playbook) process. A second run waits up to I(wait) seconds, then fails naming the
    holder. A lock whose run has died on this same controller is taken over with a warning, so the run
    after a crash goes on by itself; a lock held from another controller is broken only with
    I(break_lock=true).
  - Taking the lock is re-entrant within one run; giving it back releases only the run's own lock.
    The file lives on a tmpfs by default, so a reboot, which ends every change, frees it.
  - It never reports C(changed), as the lock is the run's bookkeeping, not a change of the host, and a
    run that changes nothing else stays at changed=0.
attributes:
  check_mode:
    support: full
    details: Reports whether the lock is free or who holds it; never writes.
  diff_mode:
    support: none
options:
  path:
    description: The lock file on the managed host.
    type: path
    default: /run/lock/tengen-change.lock
  state:
    description: C(present) takes the lock, C(absent) gives it back, C(query) only reads it.
    type: str
    choices: [present, absent, query]
    default: present
  wait:
    description: Seconds to wait for a lock held by another live run before failing (controller side).
    type: int
    default: 0
  break_lock:
    description: Take the lock from whichever run holds it (controller side). For a run known to be dead.
    type: bool
    default: false
  playbook:
    description: What the run is doing, shown to a run that finds the lock taken.
    type: str
    default: ""
notes:
  - The options C(token), C(holder) and C(take_over) are set by the action plugin, not by playbooks.
"""

EXAMPLES = r"""
- name: Take the change lock of the host, waiting up to five minutes for another run
  tengen.ops.change_lock:
    playbook: deploy.yml
    wait: 300
    break_lock: "{{ tengen_lock_break | default(false) | bool }}"

- name: Give the change lock back
  tengen.ops.change_lock:
    state: absent
"""

RETURN = r"""
acquired:
  description: Whether this run holds the lock now (with I(state=present)).
  type: bool
  returned: always
holder:
  description:
    - The run that holds the lock, or null.
    - C(token), C(user), C(controller), C(pid), C(playbook) and C(since).
  type: dict
  returned: always
taken_over:
  description: The holder whose lock this run took over (a dead run, or I(break_lock)), or null.
  type: dict
  returned: when a lock was taken over
"""


def read_holder(handle) -> dict[str, Any] | None:
    handle.seek(0)
    text = handle.read().strip()
    if not text:
        return None
    try:
        holder = json.loads(text)
    except ValueError:
        # A half-written record cannot happen (writes go under the flock), but a hand-edited one can.
        return {"token": "unreadable", "playbook": "unknown (unreadable lock file)", "since": "unknown"}
    return holder if isinstance(holder, dict) else None


def write_holder(handle, holder: dict[str, Any] | None) -> None:
    handle.seek(0)
    handle.truncate()
    if holder is not None:
        handle.write(json.dumps(holder, sort_keys=True) + "\n")
    handle.flush()
    os.fsync(handle.fileno())


def decide(state: str, current: dict | None, token: str, take_over: str | None) -> tuple[bool, bool]:
    """(acquired, write) for the lock record `current` and this run's token."""
    mine = current is not None and current.get("token") == token
    if state == "absent":
        return False, mine
    if state == "query":
        return mine, False
    if mine:
        return True, False
    if current is None or (take_over is not None and current.get("token") == take_over):
        return True, True
    return False, False


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "default": "/run/lock/tengen-change.lock"},
            "state": {"type": "str", "choices": ["present", "absent", "query"], "default": "present"},
            "wait": {"type": "int", "default": 0},
            "break_lock": {"type": "bool", "default": False},
            "playbook": {"type": "str", "default": ""},
            "token": {"type": "str", "required": True},
            "holder": {"type": "dict"},
            "take_over": {"type": "str"},
        },
        supports_check_mode=True,
    )
    p = module.params
    directory = os.path.dirname(p["path"]) or "."
    if not os.path.isdir(directory):
        module.fail_json(msg=f"change_lock: {directory} does not exist on the host")
    flags = os.O_RDWR | (0 if module.check_mode else os.O_CREAT)
    try:
        fd = os.open(p["path"], flags, 0o644)
    except FileNotFoundError:
        module.exit_json(changed=False, acquired=p["state"] == "present", holder=None)
    with os.fdopen(fd, "r+", encoding="utf-8") as handle:
        # The read and the write are one step under the flock: two runs cannot both see it free.
        fcntl.flock(handle, fcntl.LOCK_EX)
        current = read_holder(handle)
        acquired, write = decide(p["state"], current, p["token"], p["take_over"])
        # Never "changed": the lock is bookkeeping of the run, and a no-op run must stay changed=0.
        result: dict[str, Any] = {"changed": False, "acquired": acquired, "holder": current}
        if write and p["state"] == "present":
            if current is not None:
                result["taken_over"] = current
            result["holder"] = {**(p["holder"] or {}), "token": p["token"]}
        elif write:
            result["holder"] = None
        if write and not module.check_mode:
            write_holder(handle, result["holder"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
