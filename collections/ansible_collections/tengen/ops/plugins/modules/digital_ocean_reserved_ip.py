#!/usr/bin/python
"""A DigitalOcean reserved IP assigned to one Droplet."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: digital_ocean_reserved_ip
short_description: Keep one DigitalOcean reserved IP assigned to a Droplet, or release it
description:
  - The reserved IP is found by the Droplet it is assigned to (reserved IPs have no name).
  - C(present) creates one assigned to I(droplet_id) (C(POST /v2/reserved_ips)) unless the Droplet
    named I(droplet_name) already has one.
  - C(absent) unassigns the reserved IP of that Droplet, waits for the action, and deletes it.
  - community.digitalocean.digital_ocean_floating_ip speaks the older C(/v2/floating_ips) path and
    cannot be pointed at another API URL; this module takes I(api_url).
version_added: 0.1.0
author: tengen maintainers
options:
  droplet_name:
    description: Name of the Droplet the reserved IP belongs to.
    type: str
    required: true
  droplet_id:
    description: ID of that Droplet; needed when a reserved IP has to be created.
    type: int
  state:
    description: Whether the Droplet should have a reserved IP.
    type: str
    choices: [present, absent]
    default: present
  api_url:
    description: Base URL of the DigitalOcean API v2.
    type: str
    default: https://api.digitalocean.com/v2
  oauth_token:
    description:
      - The API token.
      - Taken from C(DO_API_TOKEN), C(DO_API_KEY), C(DO_OAUTH_TOKEN) or C(OAUTH_TOKEN) when not given.
    type: str
    required: true
  timeout:
    description: Seconds to wait for each API call and for the unassign action.
    type: int
    default: 60
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Give the Droplet a reserved IP
  tengen.ops.digital_ocean_reserved_ip:
    droplet_name: go-prod
    droplet_id: "{{ droplet.data.droplet.id }}"
"""

RETURN = r"""
reserved_ip:
  description: The reserved IP as the API describes it; empty when none (or not yet, in check mode).
  returned: always
  type: dict
  sample: {ip: 203.0.113.10, region: {slug: fra1}, droplet: {id: 3164444, name: go-prod}}
ip:
  description: The reserved IP address, empty when none.
  returned: always
  type: str
  sample: 203.0.113.10
"""

import json  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

# Ansible modules put their documentation first; the imports follow it.
from ansible.module_utils.basic import AnsibleModule, env_fallback  # noqa: E402
from ansible.module_utils.urls import fetch_url  # noqa: E402


class ReservedIp:
    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        self.base = module.params["api_url"].rstrip("/")
        self.headers = {
            "Authorization": f"Bearer {module.params['oauth_token']}",
            "Content-Type": "application/json",
        }

    def call(self, method: str, path: str, body: dict | None = None, expect: tuple[int, ...] = (200,)) -> Any:
        resp, info = fetch_url(
            self.module,
            f"{self.base}/{path}",
            data=json.dumps(body) if body is not None else None,
            headers=self.headers,
            method=method,
            timeout=self.module.params["timeout"],
        )
        raw = resp.read() if resp else info.get("body", b"")
        if info["status"] not in expect:
            self.module.fail_json(
                msg=f"{method} /{path} answered HTTP {info['status']}: {info.get('msg')} {raw!r}"
            )
        return json.loads(raw) if raw else {}

    def find(self, droplet_name: str) -> dict:
        page = 1
        while True:
            data = self.call("GET", f"reserved_ips?page={page}&per_page=200")
            for item in data.get("reserved_ips", []):
                if (item.get("droplet") or {}).get("name") == droplet_name:
                    return item
            if "next" not in (data.get("links") or {}).get("pages", {}):
                return {}
            page += 1

    def wait_action(self, ip: str, action_id: int) -> None:
        deadline = time.monotonic() + self.module.params["timeout"]
        while True:
            action = self.call("GET", f"reserved_ips/{ip}/actions/{action_id}")["action"]
            if action["status"] == "completed":
                return
            if action["status"] == "errored" or time.monotonic() > deadline:
                self.module.fail_json(msg=f"unassigning {ip}: action {action_id} is {action['status']}")
            time.sleep(2)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "droplet_name": {"type": "str", "required": True},
            "droplet_id": {"type": "int"},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "api_url": {"type": "str", "default": "https://api.digitalocean.com/v2"},
            "oauth_token": {
                "type": "str",
                "required": True,
                "no_log": True,
                "fallback": (env_fallback, ["DO_API_TOKEN", "DO_API_KEY", "DO_OAUTH_TOKEN", "OAUTH_TOKEN"]),
            },
            "timeout": {"type": "int", "default": 60},
        },
        supports_check_mode=True,
    )
    api = ReservedIp(module)
    current = api.find(module.params["droplet_name"])

    if module.params["state"] == "absent":
        if not current:
            module.exit_json(changed=False, reserved_ip={}, ip="")
        if not module.check_mode:
            ip = current["ip"]
            action = api.call("POST", f"reserved_ips/{ip}/actions", {"type": "unassign"}, expect=(201,))
            api.wait_action(ip, action["action"]["id"])
            api.call("DELETE", f"reserved_ips/{ip}", expect=(204,))
        module.exit_json(changed=True, reserved_ip=current, ip=current["ip"])

    if current:
        module.exit_json(changed=False, reserved_ip=current, ip=current["ip"])
    if module.check_mode:
        module.exit_json(changed=True, reserved_ip={}, ip="")
    if not module.params["droplet_id"]:
        module.fail_json(msg="droplet_id is required to create a reserved IP")
    created = api.call("POST", "reserved_ips", {"droplet_id": module.params["droplet_id"]}, expect=(202,))
    module.exit_json(changed=True, reserved_ip=created["reserved_ip"], ip=created["reserved_ip"]["ip"])


if __name__ == "__main__":
    main()
