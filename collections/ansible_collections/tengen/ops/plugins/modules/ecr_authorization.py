#!/usr/bin/python
"""Get a Docker login for the account's ECR registry."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ecr_authorization
short_description: Get a Docker login for the account's ECR registry
description:
  - Calls ECR GetAuthorizationToken and returns the registry host with a user name and a
    password valid for twelve hours, for community.docker.docker_login.
  - Changes nothing.
  - The password is returned in clear, as docker_login needs it; run the task with
    C(no_log=true) so that it stays out of the output. (A value the module itself marked
    no_log would be masked in its result and reach the next task as a placeholder.)
version_added: 0.1.0
author: tengen maintainers
options: {}
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
- name: Get an ECR login
  tengen.ops.ecr_authorization:
  register: ecr
  no_log: true

- name: Log Docker in to ECR
  community.docker.docker_login:
    registry_url: "{{ ecr.registry }}"
    username: "{{ ecr.username }}"
    password: "{{ ecr.password }}"
  no_log: true
"""

RETURN = r"""
registry:
  description: The registry host, without scheme.
  returned: success
  type: str
  sample: 123456789012.dkr.ecr.eu-west-1.amazonaws.com
username:
  description: The user name (always AWS).
  returned: success
  type: str
password:
  description: The temporary password.
  returned: success
  type: str
"""

import base64  # noqa: E402

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402

try:
    import botocore
except ImportError:
    pass  # AnsibleAWSModule reports a missing botocore


def main() -> None:
    module = AnsibleAWSModule(argument_spec={}, supports_check_mode=True)
    try:
        data = module.client("ecr").get_authorization_token()["authorizationData"][0]
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        module.fail_json_aws(exc, msg="Cannot get an ECR authorization token")
    username, password = base64.b64decode(data["authorizationToken"]).decode().split(":", 1)
    registry = data["proxyEndpoint"].split("://", 1)[-1].rstrip("/")
    # Not added to module.no_log_values: Ansible would mask it in this very result, and the next
    # task would log in with the placeholder. The calling task's no_log: true hides it instead.
    module.exit_json(changed=False, registry=registry, username=username, password=password)


if __name__ == "__main__":
    main()
