#!/usr/bin/python
"""Read what a deployed scale-out stack would run and plan it for one Docker engine."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ecs_rehearsal_plan
short_description: Plan the rehearsal of an ECS stack on one Docker engine
description:
  - Reads, from an AWS endpoint where the scale-out track ran, every ECS service of a cluster
    with the task definition it runs, the Secrets Manager values those name, the Cloud Map
    services the ECS services register with, and the ALB with its listeners, rules, target
    groups and attributes.
  - Translates them into a plan (one container per replica of each service, as its task
    definition says; PostgreSQL and Redis where the secrets' URLs point; network aliases for
    the Cloud Map names) and an HAProxy configuration standing in for the ALB.
  - A field without an equivalent on one Docker engine fails the module, naming the field.
    Deliberate omissions (IAM roles, security groups, TLS certificates) are returned in
    I(not_rehearsed).
  - Compares the plan with the replicas that run (I(running)) and returns the steps of a rolling
    update, in ECS order, for every service whose task definition revision changed.
  - Makes only read calls and changes nothing. The plan holds secret values, so register it
    with C(no_log).
version_added: 0.1.0
author: tengen maintainers
options:
  cluster:
    description: The ECS cluster (the stack name).
    type: str
    required: true
  load_balancer:
    description: The ALB's name.
    type: str
    required: true
  registry_map:
    description: Registry hosts of the task definitions' images (the ECR host) mapped to the
      registry the rehearsal pulls from, for example C(127.0.0.1:5000).
    type: dict
    required: true
  listener_ports:
    description: ALB listener port mapped to the port the stand-in proxy listens on.
    type: dict
    required: true
  network:
    description: The Docker network every container joins.
    type: str
    required: true
  architecture:
    description: The Docker host's CPU architecture (C(ansible_architecture)); it must match the
      task definitions' C(runtimePlatform).
    type: str
    default: x86_64
  prefix:
    description: Prefix of the container names; the cluster name and a dash when omitted.
    type: str
  bind_address:
    description: Address the stand-in proxy's listeners bind to inside its container.
    type: str
    default: 0.0.0.0
  running:
    description:
      - The containers that run now on the rehearsal host, as C(community.docker.docker_host_info)
        returns them with C(verbose_output) (their labels name service, task definition and slot).
      - A replica running an older task definition revision than its service's is replaced by a
        rolling update (see I(steps)); one running the service's revision is kept.
    type: list
    elements: dict
    default: []
  proxy_running:
    description: Whether the stand-in proxy runs; without it the rolling update has no load
      balancer steps.
    type: bool
    default: false
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
- name: Plan the rehearsal
  tengen.ops.ecs_rehearsal_plan:
    endpoint_url: http://127.0.0.1:5005
    region: eu-west-1
    cluster: tengen-staging
    load_balancer: tengen-staging
    registry_map: {123456789012.dkr.ecr.eu-west-1.amazonaws.com: "127.0.0.1:5000"}
    listener_ports: {80: 18080, 443: 18443}
    network: tengen-staging-rehearsal
  register: plan
  no_log: true
"""

RETURN = r"""
plan:
  description: The containers per service (docker_container parameters, replicas in order),
    the data stores, and what is not rehearsed. Holds secret values.
  returned: success
  type: dict
proxy:
  description: The HAProxy configuration text (C(config)), the listeners with their local ports,
    and the values of each target group's health check.
  returned: success
  type: dict
summary:
  description: One line per container and data store, without secret values.
  returned: success
  type: list
  elements: str
not_rehearsed:
  description: What the rehearsal leaves out, and why.
  returned: success
  type: list
  elements: str
steps:
  description:
    - The rolling update, in order; each step has C(kind) (C(start), C(configure), C(admit),
      C(drain) or C(stop)) and C(service). C(start) has C(replicas) (docker_container parameters),
      C(stop) the names of C(replicas); C(configure) has the HAProxy C(config) and the C(servers)
      (backend, server) it lists; C(admit) and C(drain) have C(servers), C(drain) the target
      group's deregistration delay as C(timeout). Empty when nothing is outdated. Holds secret values.
  returned: success
  type: list
  elements: dict
images:
  description: Every image the plan pulls, with its registry, repository and tag or digest (reference).
  returned: success
  type: list
  elements: dict
"""

from typing import Any  # noqa: E402

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402
from ansible_collections.tengen.ops.plugins.module_utils.alb_proxy import proxy_config  # noqa: E402
from ansible_collections.tengen.ops.plugins.module_utils.ecs_rehearsal import (  # noqa: E402
    RehearsalError,
    image_reference,
    read_snapshot,
    summary,
    translate,
)
from ansible_collections.tengen.ops.plugins.module_utils.ecs_rollout import (  # noqa: E402
    rollout,
    running_replicas,
)


def plan_from_snapshot(snapshot: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Everything the module returns, from a snapshot and the module's parameters."""
    plan = translate(
        snapshot,
        registry_map=params["registry_map"],
        network=params["network"],
        architecture=params["architecture"],
        prefix=params["prefix"],
    )
    ports = {int(k): int(v) for k, v in params["listener_ports"].items()}
    prefix = params["prefix"] if params["prefix"] is not None else f"{snapshot['cluster']}-"
    rolled = rollout(
        snapshot,
        plan,
        running_replicas(params.get("running") or [], prefix),
        listener_ports=ports,
        bind_address=params["bind_address"],
        proxy_running=bool(params.get("proxy_running")),
    )
    plan = rolled["plan"]
    proxy = proxy_config(snapshot, plan, ports, bind_address=params["bind_address"])
    images = sorted({spec["image"] for service in plan["services"] for spec in service["replicas"]})
    images = [image_reference(image) for image in images]
    return {
        "plan": plan,
        "proxy": proxy,
        "summary": summary(plan),
        "not_rehearsed": plan["not_rehearsed"] + proxy["not_rehearsed"],
        "images": images,
        "steps": rolled["steps"],
    }


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec={
            "cluster": {"type": "str", "required": True},
            "load_balancer": {"type": "str", "required": True},
            "registry_map": {"type": "dict", "required": True},
            "listener_ports": {"type": "dict", "required": True},
            "network": {"type": "str", "required": True},
            "architecture": {"type": "str", "default": "x86_64"},
            "prefix": {"type": "str"},
            "bind_address": {"type": "str", "default": "0.0.0.0"},
            "running": {"type": "list", "elements": "dict", "default": []},
            "proxy_running": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    params = module.params
    try:
        snapshot = read_snapshot(module.client, params["cluster"], params["load_balancer"])
        result = plan_from_snapshot(snapshot, params)
    except RehearsalError as exc:
        module.fail_json(msg=f"Cannot rehearse {params['cluster']}: {exc}")
    except Exception as exc:  # botocore errors: the endpoint is unreachable or refuses us
        module.fail_json_aws(exc, msg=f"Cannot read stack {params['cluster']} from the endpoint")
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
