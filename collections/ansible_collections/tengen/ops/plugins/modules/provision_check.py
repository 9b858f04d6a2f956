#!/usr/bin/python
"""Check provisioning input before any provider API call."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: provision_check
short_description: Check a VM plan, region, credentials and SSH public key before provisioning
description:
  - Fails, naming the variable, when the region or plan is not in the catalogue, when the plan has
    less memory than the service needs, when a credential is empty, or when the key file is not an
    OpenSSH public key.
  - Makes no API call and changes nothing; runs on the controller.
  - Reports every problem found at once.
version_added: 0.1.0
author: tengen maintainers
options:
  region:
    description: The region asked for.
    type: str
  region_var:
    description: The variable that set I(region), named in messages.
    type: str
    default: region
  regions:
    description: The regions of the catalogue. When empty, the region is not checked.
    type: list
    elements: str
    default: []
  plan:
    description: The plan (bundle or size) asked for.
    type: str
  plan_var:
    description: The variable that set I(plan), named in messages.
    type: str
    default: plan
  plans:
    description:
      - The catalogue, plan name to a dict with at least C(ram_gb). When empty, the plan is not checked.
    type: dict
    default: {}
  min_ram_gb:
    description: The least memory a plan must have, in GB.
    type: float
    default: 2
  public_key_file:
    description: Path of the SSH public key on the controller. Not checked when omitted.
    type: path
  key_types:
    description: The SSH key types the provider accepts; all OpenSSH public key types when empty.
    type: list
    elements: str
    default: []
  public_key_file_var:
    description: The variable that set I(public_key_file), named in messages.
    type: str
    default: public_key_file
  credentials:
    description:
      - Variable name to its value, or to whether it is set; each must be non-empty or true.
      - The values are never shown. Passing only whether each is set keeps secrets out of the task.
    type: dict
    default: {}
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Check the input before any API call
  tengen.ops.provision_check:
    region: "{{ provision_droplet_region }}"
    region_var: provision_droplet_region
    regions: "{{ __provision_droplet_regions }}"
    plan: "{{ provision_droplet_size }}"
    plan_var: provision_droplet_size
    plans: "{{ __provision_droplet_sizes }}"
    public_key_file: "{{ provision_droplet_public_key_file }}"
    public_key_file_var: provision_droplet_public_key_file
    key_types: [ssh-rsa, ssh-ed25519]
    # only whether the token is set, so that the secret never reaches the module
    credentials:
      provision_droplet_api_token: "{{ provision_droplet_api_token | length > 0 }}"
"""

RETURN = r"""
public_key:
  description: The key type and base64 data of the public key (the comment dropped).
  returned: when public_key_file is given
  type: str
  sample: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI...
key_type:
  description: The SSH key type.
  returned: when public_key_file is given
  type: str
  sample: ssh-ed25519
fingerprint_md5:
  description: The MD5 fingerprint of the key, colon-separated.
  returned: when public_key_file is given
  type: str
  sample: "3b:16:bf:e4:8b:00:8b:b8:59:8c:a9:d3:f0:19:45:fa"
plan_spec:
  description: The catalogue entry of the chosen plan.
  returned: when plans is given
  type: dict
  sample: {vcpu: 2, ram_gb: 4, price_usd: 24}
"""

# Ansible modules put their documentation first; the imports follow it.
from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.tengen.ops.plugins.module_utils.provision import (  # noqa: E402
    check_choice,
    check_credentials,
    check_plan,
    check_public_key_file,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "region": {"type": "str"},
            "region_var": {"type": "str", "default": "region"},
            "regions": {"type": "list", "elements": "str", "default": []},
            "plan": {"type": "str"},
            "plan_var": {"type": "str", "default": "plan"},
            "plans": {"type": "dict", "default": {}},
            "min_ram_gb": {"type": "float", "default": 2},
            "public_key_file": {"type": "path"},
            "public_key_file_var": {"type": "str", "default": "public_key_file"},
            "key_types": {"type": "list", "elements": "str", "default": []},
            "credentials": {"type": "dict", "default": {}, "no_log": True},
        },
        supports_check_mode=True,
    )
    p = module.params
    errors: list[str] = []
    result: dict = {"changed": False}
    if p["regions"]:
        errors += check_choice(p["region_var"], p["region"], p["regions"])
    if p["plans"]:
        plan_errors = check_plan(p["plan_var"], p["plan"], p["plans"], p["min_ram_gb"])
        errors += plan_errors
        if not plan_errors:
            result["plan_spec"] = p["plans"][p["plan"]]
    errors += check_credentials(p["credentials"])
    if p["public_key_file"] is not None:
        key_errors, key = check_public_key_file(
            p["public_key_file_var"], p["public_key_file"], p["key_types"]
        )
        errors += key_errors
        result.update(key)
    if errors:
        module.fail_json(msg="; ".join(errors), errors=errors)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
