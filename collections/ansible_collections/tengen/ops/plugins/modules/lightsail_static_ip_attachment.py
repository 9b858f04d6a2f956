#!/usr/bin/python
"""Attach a Lightsail static IP to an instance, or detach it."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: lightsail_static_ip_attachment
short_description: Attach an AWS Lightsail static IP to an instance, or detach it
description:
  - community.aws.lightsail_static_ip allocates and releases a static IP but cannot attach it; this
    module does the attachment (C(AttachStaticIp), C(DetachStaticIp)).
  - The static IP must exist. With I(state=absent), a missing static IP is not an error.
version_added: 0.1.0
author: tengen maintainers
options:
  name:
    description: Name of the static IP.
    type: str
    required: true
  instance_name:
    description: The instance it should be attached to. Required with I(state=present).
    type: str
  state:
    description: C(present) attaches, C(absent) detaches.
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
- name: Attach the static IP to the instance
  tengen.ops.lightsail_static_ip_attachment:
    name: go-prod-ip
    instance_name: go-prod
    region: eu-central-1
"""

RETURN = r"""
static_ip:
  description: The static IP as Lightsail describes it after the change (C(GetStaticIp)).
  returned: always
  type: dict
  sample: {name: go-prod-ip, ip_address: 203.0.113.10, is_attached: true, attached_to: go-prod}
"""

# Ansible modules put their documentation first; the imports follow it.
from ansible.module_utils.common.dict_transformations import camel_dict_to_snake_dict  # noqa: E402
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402
from ansible_collections.tengen.ops.plugins.module_utils.lightsail import get_or_none  # noqa: E402


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "instance_name": {"type": "str"},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        },
        required_if=[("state", "present", ["instance_name"])],
        supports_check_mode=True,
    )
    client = module.client("lightsail")
    name = module.params["name"]
    wanted = module.params["instance_name"]
    current = get_or_none(module, client.get_static_ip, "staticIp", staticIpName=name)

    if module.params["state"] == "absent":
        if current is None or not current.get("isAttached"):
            module.exit_json(changed=False, static_ip=camel_dict_to_snake_dict(current or {}))
        if not module.check_mode:
            try:
                client.detach_static_ip(staticIpName=name)
            except Exception as exc:  # noqa: BLE001
                module.fail_json_aws(exc, msg=f"cannot detach static IP {name}")
            current = get_or_none(module, client.get_static_ip, "staticIp", staticIpName=name) or {}
        module.exit_json(changed=True, static_ip=camel_dict_to_snake_dict(current))

    if current is None:
        if module.check_mode:
            # allocated by the task before this one, which check mode skipped
            module.exit_json(changed=True, static_ip={})
        module.fail_json(msg=f"static IP {name} does not exist; allocate it first")
    if current.get("isAttached") and current.get("attachedTo") == wanted:
        module.exit_json(changed=False, static_ip=camel_dict_to_snake_dict(current))
    if not module.check_mode:
        try:
            # AttachStaticIp moves the address when it is attached elsewhere
            client.attach_static_ip(staticIpName=name, instanceName=wanted)
        except Exception as exc:  # noqa: BLE001
            module.fail_json_aws(exc, msg=f"cannot attach static IP {name} to {wanted}")
        current = get_or_none(module, client.get_static_ip, "staticIp", staticIpName=name) or {}
    module.exit_json(changed=True, static_ip=camel_dict_to_snake_dict(current))


if __name__ == "__main__":
    main()
