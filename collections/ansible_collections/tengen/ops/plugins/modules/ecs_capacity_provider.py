#!/usr/bin/python
"""Manage an ECS capacity provider backed by an Auto Scaling group."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ecs_capacity_provider
short_description: Manage an ECS capacity provider backed by an Auto Scaling group
description:
  - Ensures an Amazon ECS capacity provider that launches container instances through an
    Auto Scaling group, with managed scaling (ECS sets the group's desired capacity from the
    tasks waiting for it) and managed termination protection.
  - Managed scaling and termination protection are updated in place. The Auto Scaling group of
    a provider is fixed at creation; a provider bound to another group fails, naming both.
  - Attach the provider to a cluster with community.aws.ecs_cluster I(capacity_providers);
    neither amazon.aws nor community.aws has a module for the provider itself.
  - With I(state=absent) the provider is deleted; a provider still attached to a cluster is
    refused by ECS, so delete or detach the cluster first.
version_added: 0.1.0
author: tengen maintainers
options:
  name:
    description: Name of the capacity provider.
    type: str
    required: true
  auto_scaling_group_arn:
    description: ARN of the Auto Scaling group. Required with I(state=present).
    type: str
  managed_scaling:
    description: Managed scaling of the group by ECS.
    type: dict
    default: {}
    suboptions:
      status:
        description: Whether ECS scales the group.
        type: str
        choices: [ENABLED, DISABLED]
        default: ENABLED
      target_capacity:
        description: Percent of the group's instances ECS aims to keep in use (100 keeps no spare).
        type: int
        default: 100
      minimum_scaling_step_size:
        description: Fewest instances added or removed at once.
        type: int
        default: 1
      maximum_scaling_step_size:
        description: Most instances added or removed at once.
        type: int
        default: 10
      instance_warmup_period:
        description: Seconds a new instance takes before it counts in the group's metrics.
        type: int
        default: 300
  managed_termination_protection:
    description:
      - Whether ECS keeps instances running tasks from being terminated on scale-in.
      - C(ENABLED) needs the group's instances protected from scale-in at launch.
    type: str
    choices: [ENABLED, DISABLED]
    default: DISABLED
  state:
    description: Whether the capacity provider exists.
    type: str
    choices: [present, absent]
    default: present
  tags:
    description: Tags of the capacity provider, set at creation.
    type: dict
    default: {}
notes:
  - Needs C(ecs:CreateCapacityProvider), C(ecs:UpdateCapacityProvider),
    C(ecs:DescribeCapacityProviders) and C(ecs:DeleteCapacityProvider).
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
- name: Let ECS scale the GPU hosts' group
  tengen.ops.ecs_capacity_provider:
    name: tengen-staging-gpu
    auto_scaling_group_arn: "{{ asg.auto_scaling_group_arn }}"
    managed_scaling:
      target_capacity: 100
    tags:
      tengen:stack: tengen-staging

- name: Remove it once the cluster is gone
  tengen.ops.ecs_capacity_provider:
    name: tengen-staging-gpu
    state: absent
"""

RETURN = r"""
capacity_provider:
  description: The capacity provider as ECS describes it (snake_case keys); empty when absent.
  returned: always
  type: dict
  sample: {name: tengen-staging-gpu, status: ACTIVE,
           auto_scaling_group_provider: {managed_scaling: {status: ENABLED, target_capacity: 100}}}
"""

from typing import Any  # noqa: E402

from ansible.module_utils.common.dict_transformations import camel_dict_to_snake_dict  # noqa: E402
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402

try:
    import botocore
except ImportError:
    pass  # AnsibleAWSModule reports a missing botocore

SCALING_KEYS = {
    "status": "status",
    "target_capacity": "targetCapacity",
    "minimum_scaling_step_size": "minimumScalingStepSize",
    "maximum_scaling_step_size": "maximumScalingStepSize",
    "instance_warmup_period": "instanceWarmupPeriod",
}


def wanted_provider(params: dict[str, Any]) -> dict[str, Any]:
    """The autoScalingGroupProvider ECS should hold, from the module's parameters."""
    scaling = params.get("managed_scaling") or {}
    return {
        "autoScalingGroupArn": params["auto_scaling_group_arn"],
        "managedScaling": {
            api: scaling[key] for key, api in SCALING_KEYS.items() if scaling.get(key) is not None
        },
        "managedTerminationProtection": params["managed_termination_protection"],
    }


def differences(current: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """The updatable settings of `wanted` that `current` does not hold (by API key)."""
    diff = [
        f"managedScaling.{key}"
        for key, value in wanted["managedScaling"].items()
        if current.get("managedScaling", {}).get(key) != value
    ]
    if current.get("managedTerminationProtection") != wanted["managedTerminationProtection"]:
        diff.append("managedTerminationProtection")
    return diff


def describe(client: Any, name: str) -> dict[str, Any] | None:
    found = client.describe_capacity_providers(capacityProviders=[name]).get("capacityProviders", [])
    active = [p for p in found if p.get("name") == name and p.get("status") == "ACTIVE"]
    return active[0] if active else None


def main() -> None:
    scaling_spec = {
        "status": {"type": "str", "choices": ["ENABLED", "DISABLED"], "default": "ENABLED"},
        "target_capacity": {"type": "int", "default": 100},
        "minimum_scaling_step_size": {"type": "int", "default": 1},
        "maximum_scaling_step_size": {"type": "int", "default": 10},
        "instance_warmup_period": {"type": "int", "default": 300},
    }
    module = AnsibleAWSModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "auto_scaling_group_arn": {"type": "str"},
            "managed_scaling": {"type": "dict", "default": {}, "options": scaling_spec},
            "managed_termination_protection": {
                "type": "str",
                "choices": ["ENABLED", "DISABLED"],
                "default": "DISABLED",
            },
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "tags": {"type": "dict", "default": {}},
        },
        supports_check_mode=True,
        required_if=[("state", "present", ("auto_scaling_group_arn",))],
    )
    params = module.params
    name = params["name"]
    client = module.client("ecs")
    try:
        current = describe(client, name)
        if params["state"] == "absent":
            if current is None:
                module.exit_json(changed=False, capacity_provider={})
            if not module.check_mode:
                client.delete_capacity_provider(capacityProvider=name)
            module.exit_json(changed=True, capacity_provider={})

        wanted = wanted_provider(params)
        if current is None:
            if module.check_mode:
                module.exit_json(changed=True, capacity_provider={})
            created = client.create_capacity_provider(
                name=name,
                autoScalingGroupProvider=wanted,
                tags=[{"key": k, "value": str(v)} for k, v in params["tags"].items()],
            )["capacityProvider"]
            module.exit_json(changed=True, capacity_provider=camel_dict_to_snake_dict(created))

        provider = current.get("autoScalingGroupProvider", {})
        if provider.get("autoScalingGroupArn") != wanted["autoScalingGroupArn"]:
            module.fail_json(
                msg=(
                    f"Capacity provider {name} is bound to {provider.get('autoScalingGroupArn')}, "
                    f"not {wanted['autoScalingGroupArn']}; ECS cannot change it: delete the provider first"
                )
            )
        diff = differences(provider, wanted)
        if not diff:
            module.exit_json(changed=False, capacity_provider=camel_dict_to_snake_dict(current))
        if module.check_mode:
            module.exit_json(changed=True, updated=diff, capacity_provider=camel_dict_to_snake_dict(current))
        update = {k: v for k, v in wanted.items() if k != "autoScalingGroupArn"}
        updated = client.update_capacity_provider(name=name, autoScalingGroupProvider=update)[
            "capacityProvider"
        ]
        module.exit_json(changed=True, updated=diff, capacity_provider=camel_dict_to_snake_dict(updated))
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        module.fail_json_aws(exc, msg=f"Cannot manage ECS capacity provider {name}")


if __name__ == "__main__":
    main()
