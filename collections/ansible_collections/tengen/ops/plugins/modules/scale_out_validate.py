#!/usr/bin/python
"""Check the scale-out configuration before any AWS call."""

from __future__ import annotations

DOCUMENTATION = r"""
module: scale_out_validate
short_description: Check the scale-out configuration before any AWS call
description:
  - Checks the C(scale_out_*) inventory variables for mistakes that AWS would reject late or
    not at all, and fails naming the variable at fault.
  - "Checks: malformed or overlapping CIDRs, subnets outside the VPC, fewer than two availability
    zones, a missing domain or certificate, CPU/memory pairs that Fargate does not run, desired
    counts outside the autoscaling bounds, an engine capacity other than fargate or gpu; with gpu,
    a host type unknown, offered in none of the zones, a zone that offers none of the types (by
    I(gpu_instances)), an on-demand split out of range, an engine task that does not fit a host."
  - Makes no AWS call and changes nothing.
version_added: 0.1.0
author: tengen maintainers
options:
  config:
    description: The C(scale_out_*) variables, keyed by their names.
    type: dict
    required: true
  gpu_instances:
    description:
      - The C(gpu_instances) section of C(data/aws-prices.yml) (C(specs), C(offered_in)), a dated
        table of the GPU types and the zones that offer them; read with C(scale_out_engine_capacity=gpu).
    type: dict
    default: {}
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Check the scale-out configuration
  tengen.ops.scale_out_validate:
    config:
      scale_out_stack: "{{ scale_out_stack }}"
      scale_out_vpc_cidr: "{{ scale_out_vpc_cidr }}"
      scale_out_services: "{{ scale_out_services }}"
"""

RETURN = r"""
errors:
  description: Every problem found, each starting with the variable at fault.
  returned: always
  type: list
  elements: str
  sample: ["scale_out_private_subnet_cidrs[0]: 10.40.0.0/24 overlaps scale_out_public_subnet_cidrs[0]"]
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.tengen.ops.plugins.module_utils.scale_out import validate  # noqa: E402


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "config": {"type": "dict", "required": True},
            "gpu_instances": {"type": "dict", "default": {}},
        },
        supports_check_mode=True,
    )
    errors = validate(module.params["config"], module.params["gpu_instances"])
    if errors:
        module.fail_json(msg="Invalid scale-out configuration: " + "; ".join(errors), errors=errors)
    module.exit_json(changed=False, errors=[])


if __name__ == "__main__":
    main()
