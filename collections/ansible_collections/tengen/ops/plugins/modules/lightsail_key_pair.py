#!/usr/bin/python
"""Import or delete an SSH public key as a Lightsail key pair."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: lightsail_key_pair
short_description: Import or delete an SSH public key as an AWS Lightsail key pair
description:
  - Imports the operator's OpenSSH public key (C(ImportKeyPair)) so that instances accept it, or
    deletes the key pair (C(DeleteKeyPair)). Lightsail cannot update a key pair in place, so an
    existing key pair of that name is left as it is and reported unchanged.
  - community.aws has no module for Lightsail key pairs.
version_added: 0.1.0
author: tengen maintainers
options:
  name:
    description: Name of the key pair.
    type: str
    required: true
  public_key:
    description: The OpenSSH public key line. Required with I(state=present).
    type: str
  state:
    description: Whether the key pair should exist.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Import the operator's key
  tengen.ops.lightsail_key_pair:
    name: go-prod
    public_key: "{{ lookup('ansible.builtin.file', '~/.ssh/id_rsa.pub') }}"
    region: eu-central-1
"""

RETURN = r"""
key_pair:
  description:
    - The key pair as Lightsail describes it (C(GetKeyPair)).
    - Empty when absent, or in check mode before creation.
  returned: always
  type: dict
  sample: {name: go-prod, fingerprint: "3b:16:bf:e4:8b:00:8b:b8:59:8c:a9:d3:f0:19:45:fa"}
"""

# Ansible modules put their documentation first; the imports follow it.
from ansible.module_utils.common.dict_transformations import camel_dict_to_snake_dict  # noqa: E402
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402
from ansible_collections.tengen.ops.plugins.module_utils.lightsail import get_or_none  # noqa: E402


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "public_key": {"type": "str"},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        },
        required_if=[("state", "present", ["public_key"])],
        supports_check_mode=True,
    )
    client = module.client("lightsail")
    name = module.params["name"]
    current = get_or_none(module, client.get_key_pair, "keyPair", keyPairName=name)

    if module.params["state"] == "absent":
        if current is None:
            module.exit_json(changed=False, key_pair={})
        if not module.check_mode:
            try:
                client.delete_key_pair(keyPairName=name)
            except Exception as exc:  # noqa: BLE001
                module.fail_json_aws(exc, msg=f"cannot delete key pair {name}")
        module.exit_json(changed=True, key_pair=camel_dict_to_snake_dict(current))

    if current is not None:
        module.exit_json(changed=False, key_pair=camel_dict_to_snake_dict(current))
    if module.check_mode:
        module.exit_json(changed=True, key_pair={})
    try:
        client.import_key_pair(keyPairName=name, publicKeyBase64=module.params["public_key"].strip())
    except Exception as exc:  # noqa: BLE001
        module.fail_json_aws(exc, msg=f"cannot import key pair {name}")
    created = get_or_none(module, client.get_key_pair, "keyPair", keyPairName=name) or {}
    module.exit_json(changed=True, key_pair=camel_dict_to_snake_dict(created))


if __name__ == "__main__":
    main()
