#!/usr/bin/python
"""Deregister every active revision of ECS task definition families."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ecs_task_definitions_absent
short_description: Deregister every active revision of ECS task definition families
description:
  - Finds the active revisions of each family (community.aws.ecs_taskdefinition removes one
    revision at a time, by ARN or revision) and deregisters them all.
version_added: 0.1.0
author: tengen maintainers
options:
  families:
    description: Task definition families, matched exactly.
    type: list
    elements: str
    required: true
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
- name: Deregister the stack's task definitions
  tengen.ops.ecs_task_definitions_absent:
    families: [tengen-staging-backend, tengen-staging-engine, tengen-staging-web]
"""

RETURN = r"""
deregistered:
  description: ARNs of the revisions deregistered (or that would be, in check mode).
  returned: always
  type: list
  elements: str
"""

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402

try:
    import botocore
except ImportError:
    pass  # AnsibleAWSModule reports a missing botocore


def active_revisions(client, family: str) -> list[str]:
    arns: list[str] = []
    paginator = client.get_paginator("list_task_definitions")
    for page in paginator.paginate(familyPrefix=family, status="ACTIVE"):
        # familyPrefix matches prefixes: keep the family itself only.
        arns += [
            arn for arn in page["taskDefinitionArns"] if arn.rsplit("/", 1)[-1].rsplit(":", 1)[0] == family
        ]
    return arns


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec={"families": {"type": "list", "elements": "str", "required": True}},
        supports_check_mode=True,
    )
    client = module.client("ecs")
    found: list[str] = []
    try:
        for family in module.params["families"]:
            found += active_revisions(client, family)
        if not module.check_mode:
            for arn in found:
                client.deregister_task_definition(taskDefinition=arn)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        module.fail_json_aws(exc, msg="Cannot deregister task definitions")
    module.exit_json(changed=bool(found), deregistered=found)


if __name__ == "__main__":
    main()
