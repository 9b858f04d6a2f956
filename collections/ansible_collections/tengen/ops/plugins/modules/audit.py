#!/usr/bin/python
"""Module: append one entry to the audit trail of a tengen host (the host side of tengen.ops.audit)."""

from __future__ import annotations

import json

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tengen.ops.plugins.module_utils.audit import ACTIONS, OUTCOMES, append, make_entry

DOCUMENTATION = r"""
module: audit
short_description: Append one entry to the audit trail of a tengen host
version_added: 0.1.0
description:
  - Appends one JSON line to the audit trail on the managed host, by default
    C(/var/log/tengen/audit.jsonl) (root-owned, mode 0640, its directory 0750). Each entry holds
    C(time) (UTC), C(controller_user) and C(controller) (who ran the playbook, where),
    C(ansible_user) (the login on the host), C(action), C(outcome), C(release) (the live release
    id after the action), C(playbook) and C(detail).
  - The controller side (the action plugin of the same name) fills in the controller's user and
    host name and the Ansible user; callers give the action and the outcome only.
  - Writers lock a file beside the trail, so two runs never interleave or rotate under each
    other. Once the trail would grow over I(max_bytes) it becomes C(.1) and I(keep) old files stay.
  - When I(release) is not given, the live release is read from I(release_ledger) (the
    C(game_stack) role's ledger, see C(tengen.ops.release_state)).
  - It never reports C(changed) (the trail records a run, it does not change the host's service,
    so a run that changes nothing stays at changed=0). In check mode nothing is written.
attributes:
  check_mode:
    support: full
    details: Returns the entry it would write; writes nothing.
  diff_mode:
    support: none
options:
  path:
    description: The audit trail on the managed host.
    type: path
    default: /var/log/tengen/audit.jsonl
  action:
    description: What was done.
    type: str
    required: true
    choices: [site, release, rollback, restore, maintenance on, maintenance off, cutover, cutover rollback]
  outcome:
    description: C(rolled back) is a release that failed and left the previous release serving.
    type: str
    required: true
    choices: [ok, failed, rolled back]
  release:
    description: The release id; empty reads the live one from I(release_ledger).
    type: str
    default: ""
  release_ledger:
    description: The release ledger read when I(release) is empty; a missing file gives no id.
    type: path
    default: /opt/tengen/releases.json
  playbook:
    description: The playbook that did it.
    type: str
    default: ""
  detail:
    description: One line more (a reason, a backup's name, an error); shortened to 500 characters.
    type: str
    default: ""
  controller_user:
    description: Set by the action plugin (the controller's user).
    type: str
    default: ""
  controller:
    description: Set by the action plugin (the controller's host name).
    type: str
    default: ""
  ansible_user:
    description: Set by the action plugin (the user Ansible logs in as).
    type: str
    default: ""
  max_bytes:
    description: Size over which the trail is rotated.
    type: int
    default: 1048576
  keep:
    description: Rotated files kept (C(.1) newest).
    type: int
    default: 4
"""

EXAMPLES = r"""
- name: Record the release
  tengen.ops.audit:
    action: release
    outcome: ok
    playbook: deploy.yml

- name: Record a failed restore with its reason
  tengen.ops.audit:
    action: restore
    outcome: failed
    playbook: restore.yml
    detail: "{{ ansible_failed_result.msg | default('') }}"
"""

RETURN = r"""
entry:
  description: The entry written (or, in check mode, that would be written).
  type: dict
  returned: always
rotated:
  description: Whether the trail was rotated before this entry.
  type: bool
  returned: always
"""


def live_release(ledger: str) -> str | None:
    try:
        with open(ledger, encoding="utf-8") as handle:
            releases = json.load(handle).get("releases") or []
    except (OSError, ValueError, AttributeError):
        return None
    return releases[0].get("id") if releases and isinstance(releases[0], dict) else None


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "default": "/var/log/tengen/audit.jsonl"},
            "action": {"type": "str", "required": True, "choices": list(ACTIONS)},
            "outcome": {"type": "str", "required": True, "choices": list(OUTCOMES)},
            "release": {"type": "str", "default": ""},
            "release_ledger": {"type": "path", "default": "/opt/tengen/releases.json"},
            "playbook": {"type": "str", "default": ""},
            "detail": {"type": "str", "default": ""},
            "controller_user": {"type": "str", "default": ""},
            "controller": {"type": "str", "default": ""},
            "ansible_user": {"type": "str", "default": ""},
            "max_bytes": {"type": "int", "default": 1048576},
            "keep": {"type": "int", "default": 4},
        },
        supports_check_mode=True,
    )
    p = module.params
    if p["max_bytes"] < 1024 or p["keep"] < 0:
        module.fail_json(
            msg=f"max_bytes must be 1024 or more and keep 0 or more (got {p['max_bytes']}, {p['keep']})"
        )
    entry = make_entry(
        action=p["action"],
        outcome=p["outcome"],
        controller_user=p["controller_user"],
        controller=p["controller"],
        ansible_user=p["ansible_user"],
        release=p["release"] or live_release(p["release_ledger"]),
        playbook=p["playbook"],
        detail=p["detail"],
    )
    if module.check_mode:
        module.exit_json(changed=False, entry=entry, rotated=False)
    try:
        done = append(p["path"], entry, max_bytes=p["max_bytes"], keep=p["keep"])
    except OSError as exc:
        module.fail_json(msg=f"cannot append to the audit trail {p['path']}: {exc}", entry=entry)
    module.exit_json(changed=False, entry=entry, rotated=done["rotated"])


if __name__ == "__main__":
    main()
