#!/usr/bin/python
"""Module: the small release ledger of a game_stack VM (which images are live, which came before)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tengen.ops.plugins.module_utils.sqlite_backup import atomic_write_bytes

DOCUMENTATION = r"""
module: release_state
short_description: Keep the list of releases of the tengen stack on its VM
version_added: 0.1.0
description:
  - Reads and updates a JSON file listing the releases of the stack, newest first, each with the image
    references it ran and the backend slot (blue or green) that served it. The previous entry is what a
    rollback restores.
  - With I(state=present) the given release becomes the newest entry (moved up if it was already
    listed) and only the newest I(keep) entries stay. Images used only by dropped entries are returned
    as C(pruned_images) so that the caller can remove them.
  - With I(state=absent) the release with the given I(images) leaves the list (a release recorded
    as live whose switch then failed), so that the one before it is live again.
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
options:
  path:
    description: The state file.
    type: path
    required: true
  state:
    description:
      - C(query) only reads; C(present) records I(images) and I(slot) as the live release;
        C(absent) removes the release of I(images).
    type: str
    choices: [query, present, absent]
    default: query
  images:
    description: Image references of the release, by service (backend, engine, web, caddy).
    type: dict
  slot:
    description: The backend slot that serves the release.
    type: str
    choices: [blue, green]
  keep:
    description: How many releases to keep listed (and their images on the VM).
    type: int
    default: 3
"""

EXAMPLES = r"""
- name: Read the release ledger
  tengen.ops.release_state:
    path: /opt/tengen/releases.json
  register: releases

- name: Record the release that is now live
  tengen.ops.release_state:
    path: /opt/tengen/releases.json
    state: present
    images: {backend: "tengen/backend:3f2a9c1d0b4e", engine: "tengen/engine-gnugo:9a8b7c6d5e4f"}
    slot: green
    keep: 3
"""

RETURN = r"""
releases:
  description: The releases, newest first, each with C(id), C(images) and C(slot).
  type: list
  elements: dict
  returned: always
current:
  description: The live release, or null when none was recorded yet.
  type: dict
  returned: always
previous:
  description: The release before the live one (what a rollback restores), or null.
  type: dict
  returned: always
pruned_images:
  description: Image references only dropped releases used.
  type: list
  elements: str
  returned: always
"""


def release_id(images: dict[str, str]) -> str:
    canonical = json.dumps(images, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def load(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return {"releases": []}
    if not isinstance(data, dict) or not isinstance(data.get("releases"), list):
        raise ValueError(f"{path} is not a release ledger")
    return data


Ledger = dict[str, Any]


def record(data: Ledger, images: dict[str, str], slot: str, keep: int) -> tuple[Ledger, list[str]]:
    """The ledger with the release on top, and the images no kept release uses any more."""
    rid = release_id(images)
    entry = {"id": rid, "images": dict(sorted(images.items())), "slot": slot}
    others = [r for r in data["releases"] if r.get("id") != rid]
    kept = [entry] + others[: max(keep, 1) - 1]
    dropped = others[max(keep, 1) - 1 :]
    in_use = {ref for r in kept for ref in r.get("images", {}).values()}
    pruned = sorted({ref for r in dropped for ref in r.get("images", {}).values()} - in_use)
    return {"releases": kept}, pruned


def summary(data: dict[str, Any]) -> dict[str, Any]:
    releases = data["releases"]
    return {
        "releases": releases,
        "current": releases[0] if releases else None,
        "previous": releases[1] if len(releases) > 1 else None,
    }


def write(path: str, data: dict[str, Any]) -> None:
    # fsynced and renamed into place: a crash never leaves a partial ledger for a rollback to read
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode(), mode=0o644)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "state": {"type": "str", "choices": ["query", "present", "absent"], "default": "query"},
            "images": {"type": "dict"},
            "slot": {"type": "str", "choices": ["blue", "green"]},
            "keep": {"type": "int", "default": 3},
        },
        required_if=[("state", "present", ["images", "slot"]), ("state", "absent", ["images"])],
        supports_check_mode=True,
    )
    path = module.params["path"]
    try:
        data = load(path)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    if module.params["state"] == "query":
        module.exit_json(changed=False, pruned_images=[], **summary(data))

    images = {str(k): str(v) for k, v in module.params["images"].items()}
    if module.params["state"] == "absent":
        new, pruned = {"releases": [r for r in data["releases"] if r.get("id") != release_id(images)]}, []
    else:
        new, pruned = record(data, images, module.params["slot"], module.params["keep"])
    changed = new != {"releases": data["releases"]}
    if changed and not module.check_mode:
        write(path, new)
    module.exit_json(changed=changed, pruned_images=pruned, **summary(new))


if __name__ == "__main__":
    main()
