#!/usr/bin/python
"""Turn Lightsail automatic snapshots of an instance on or off."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: lightsail_auto_snapshot
short_description: Turn AWS Lightsail automatic daily snapshots of an instance on or off
description:
  - Manages the C(AutoSnapshot) add-on of a Lightsail instance (C(EnableAddOn), C(DisableAddOn)),
    one snapshot a day at I(snapshot_time) UTC, the last seven kept by Lightsail.
  - community.aws has no module for Lightsail add-ons.
version_added: 0.1.0
author: tengen maintainers
options:
  instance_name:
    description: The instance.
    type: str
    required: true
  enabled:
    description: Whether automatic snapshots should be on.
    type: bool
    default: true
  snapshot_time:
    description: Time of day (UTC, C(HH:00)) when the daily snapshot starts.
    type: str
    default: "06:00"
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
- name: Take a snapshot of the instance every day at 04:00 UTC
  tengen.ops.lightsail_auto_snapshot:
    instance_name: go-prod
    snapshot_time: "04:00"
    region: eu-central-1
"""

RETURN = r"""
add_on:
  description: The AutoSnapshot add-on as Lightsail reports it after the change; empty when off.
  returned: always
  type: dict
  sample: {name: AutoSnapshot, status: Enabled, snapshot_time_of_day: "06:00"}
"""

import re  # noqa: E402

# Ansible modules put their documentation first; the imports follow it.
from ansible.module_utils.common.dict_transformations import camel_dict_to_snake_dict  # noqa: E402
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402
from ansible_collections.tengen.ops.plugins.module_utils.lightsail import get_or_none  # noqa: E402

ADD_ON = "AutoSnapshot"


def find_add_on(instance: dict) -> dict:
    for add_on in instance.get("addOns") or []:
        if add_on.get("name") == ADD_ON and add_on.get("status") not in ("Disabled", "Disabling"):
            return add_on
    return {}


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec={
            "instance_name": {"type": "str", "required": True},
            "enabled": {"type": "bool", "default": True},
            "snapshot_time": {"type": "str", "default": "06:00"},
        },
        supports_check_mode=True,
    )
    client = module.client("lightsail")
    name = module.params["instance_name"]
    when = module.params["snapshot_time"]
    if not re.fullmatch(r"([01][0-9]|2[0-3]):00", when):
        module.fail_json(msg=f"snapshot_time must be HH:00 (UTC), got {when!r}")

    instance = get_or_none(module, client.get_instance, "instance", instanceName=name)
    if instance is None:
        if module.check_mode and module.params["enabled"]:
            # created by the task before this one, which check mode skipped
            module.exit_json(changed=True, add_on={})
        if module.params["enabled"]:
            module.fail_json(msg=f"instance {name} does not exist")
        module.exit_json(changed=False, add_on={})

    current = find_add_on(instance)
    if not module.params["enabled"]:
        if not current:
            module.exit_json(changed=False, add_on={})
        if not module.check_mode:
            try:
                client.disable_add_on(addOnType=ADD_ON, resourceName=name)
            except Exception as exc:  # noqa: BLE001
                module.fail_json_aws(exc, msg=f"cannot disable automatic snapshots of {name}")
        module.exit_json(changed=True, add_on={})

    if current and current.get("snapshotTimeOfDay") == when:
        module.exit_json(changed=False, add_on=camel_dict_to_snake_dict(current))
    if module.check_mode:
        module.exit_json(changed=True, add_on={})
    try:
        # EnableAddOn also changes the time of an add-on that is already on
        client.enable_add_on(
            resourceName=name,
            addOnRequest={"addOnType": ADD_ON, "autoSnapshotAddOnRequest": {"snapshotTimeOfDay": when}},
        )
    except Exception as exc:  # noqa: BLE001
        module.fail_json_aws(exc, msg=f"cannot enable automatic snapshots of {name}")
    instance = get_or_none(module, client.get_instance, "instance", instanceName=name) or {}
    module.exit_json(changed=True, add_on=camel_dict_to_snake_dict(find_add_on(instance)))


if __name__ == "__main__":
    main()
