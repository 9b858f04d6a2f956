#!/usr/bin/python
"""Manage an ElastiCache (Redis) replication group."""

from __future__ import annotations

DOCUMENTATION = r"""
module: elasticache_replication_group
short_description: Manage an ElastiCache Redis replication group
description:
  - Creates, updates or deletes an ElastiCache replication group, which Redis needs for
    encryption in transit and for a replica with automatic failover.
  - community.aws.elasticache manages single cache clusters only.
  - Updates node type, description, security groups, snapshot retention and automatic failover
    in place. Encryption and the number of nodes are fixed at creation; a difference fails.
  - Tags are set at creation.
  - An I(auth_token) makes Redis require AUTH. It is set at creation, or added to a group that
    has none (AUTH token update strategy ROTATE); an existing token cannot be read back, so a
    different one is not detected (rotate it with the AWS API).
version_added: 0.1.0
author: tengen maintainers
options:
  replication_group_id:
    description: The group's identifier (1-40 lowercase letters, digits or dashes).
    type: str
    required: true
  description:
    description: A description of the group.
    type: str
    default: Redis
  state:
    description: Whether the group exists.
    type: str
    choices: [present, absent]
    default: present
  node_type:
    description: The cache node type, for example C(cache.t4g.micro).
    type: str
  engine_version:
    description: Redis engine version at creation.
    type: str
    default: "7.1"
  num_cache_clusters:
    description: Nodes in the group; two or more turn on automatic failover and Multi-AZ.
    type: int
    default: 1
  cache_subnet_group_name:
    description: The cache subnet group (private subnets).
    type: str
  security_group_ids:
    description: VPC security groups of the nodes.
    type: list
    elements: str
    default: []
  port:
    description: Redis port.
    type: int
    default: 6379
  transit_encryption:
    description: TLS between clients and Redis (clients use C(rediss://)).
    type: bool
    default: true
  at_rest_encryption:
    description: Encrypt data on disk and in backups.
    type: bool
    default: true
  auth_token:
    description:
      - The password Redis requires (AUTH), 16 to 128 printable characters without C(@), C(") or C(/).
      - Needs I(transit_encryption). Run the task with C(no_log=true).
    type: str
  snapshot_retention_limit:
    description: Days of automatic snapshots (0 turns them off).
    type: int
    default: 0
  tags:
    description: Tags set when the group is created.
    type: dict
    default: {}
  wait:
    description: Wait until the group is available (or gone).
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait.
    type: int
    default: 1800
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
- name: Create an encrypted Redis replication group in private subnets
  tengen.ops.elasticache_replication_group:
    replication_group_id: tengen-staging
    node_type: cache.t4g.micro
    num_cache_clusters: 2
    cache_subnet_group_name: tengen-staging-cache
    security_group_ids: [sg-0123456789abcdef0]
    auth_token: "{{ redis_auth_token }}"
    tags:
      tengen:stack: tengen-staging
  no_log: true

- name: Delete it
  tengen.ops.elasticache_replication_group:
    replication_group_id: tengen-staging
    state: absent
"""

RETURN = r"""
replication_group:
  description: The group as ElastiCache describes it (snake_case keys); empty when absent.
  returned: always
  type: dict
primary_endpoint:
  description: Where clients write; empty until the group is available.
  returned: when state is present
  type: dict
  sample: {address: tengen-staging.abc123.ng.0001.euw1.cache.amazonaws.com, port: 6379}
"""

from typing import Any  # noqa: E402

from ansible.module_utils.common.dict_transformations import camel_dict_to_snake_dict  # noqa: E402
from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code  # noqa: E402
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402

try:
    import botocore
except ImportError:
    pass  # AnsibleAWSModule reports a missing botocore


class ReplicationGroup:
    def __init__(self, module: AnsibleAWSModule) -> None:
        self.module = module
        self.params = module.params
        self.client = module.client("elasticache")
        self.group_id: str = self.params["replication_group_id"]

    def describe(self) -> dict[str, Any] | None:
        try:
            groups = self.client.describe_replication_groups(ReplicationGroupId=self.group_id)
        except is_boto3_error_code("ReplicationGroupNotFoundFault"):
            return None
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:  # pylint: disable=duplicate-except
            self.module.fail_json_aws(exc, msg=f"Cannot describe replication group {self.group_id}")
        return groups["ReplicationGroups"][0]

    def wait(self, waiter: str) -> None:
        if not self.params["wait"]:
            return
        delay = 15
        self.client.get_waiter(waiter).wait(
            ReplicationGroupId=self.group_id,
            WaiterConfig={"Delay": delay, "MaxAttempts": max(1, self.params["wait_timeout"] // delay)},
        )

    def create(self) -> None:
        p = self.params  # node_type and cache_subnet_group_name: required_if state is present
        multi = p["num_cache_clusters"] > 1
        self.client.create_replication_group(
            ReplicationGroupId=self.group_id,
            ReplicationGroupDescription=p["description"],
            Engine="redis",
            EngineVersion=p["engine_version"],
            CacheNodeType=p["node_type"],
            NumCacheClusters=p["num_cache_clusters"],
            AutomaticFailoverEnabled=multi,
            MultiAZEnabled=multi,
            CacheSubnetGroupName=p["cache_subnet_group_name"],
            SecurityGroupIds=p["security_group_ids"],
            Port=p["port"],
            TransitEncryptionEnabled=p["transit_encryption"],
            AtRestEncryptionEnabled=p["at_rest_encryption"],
            SnapshotRetentionLimit=p["snapshot_retention_limit"],
            Tags=[{"Key": k, "Value": str(v)} for k, v in p["tags"].items()],
            **({"AuthToken": p["auth_token"]} if p["auth_token"] else {}),
        )

    def differences(self, group: dict[str, Any]) -> dict[str, Any]:
        """The in-place changes that would bring the group to the requested state."""
        p = self.params
        fixed = {
            "transit_encryption": bool(group.get("TransitEncryptionEnabled")),
            "at_rest_encryption": bool(group.get("AtRestEncryptionEnabled")),
        }
        nodes = len(group.get("MemberClusters", []))
        if nodes != p["num_cache_clusters"]:
            self.module.warn(
                f"Replication group {self.group_id} has {nodes} nodes, not {p['num_cache_clusters']}; "
                "this module does not add or remove replicas in place"
            )
        wrong = [f"{k} is {v}, not {p[k]}" for k, v in fixed.items() if v != p[k]]
        if wrong:
            self.module.fail_json(
                msg=f"Replication group {self.group_id}: {'; '.join(wrong)}; these are fixed at creation "
                "(replace the group to change them)"
            )
        changes: dict[str, Any] = {}
        if group.get("CacheNodeType") != p["node_type"]:
            changes["CacheNodeType"] = p["node_type"]
        if group.get("Description") != p["description"]:
            changes["ReplicationGroupDescription"] = p["description"]
        if group.get("SnapshotRetentionLimit", 0) != p["snapshot_retention_limit"]:
            changes["SnapshotRetentionLimit"] = p["snapshot_retention_limit"]
        failover = group.get("AutomaticFailover") in ("enabled", "enabling")
        if failover != (p["num_cache_clusters"] > 1):
            changes["AutomaticFailoverEnabled"] = p["num_cache_clusters"] > 1
        if p["auth_token"] and not group.get("AuthTokenEnabled"):
            changes["AuthToken"] = p["auth_token"]
            changes["AuthTokenUpdateStrategy"] = "ROTATE"
        elif not p["auth_token"] and group.get("AuthTokenEnabled"):
            self.module.warn(f"Replication group {self.group_id} requires AUTH; no auth_token was given")
        current_sgs = self.security_groups(group)
        if current_sgs is not None and sorted(current_sgs) != sorted(p["security_group_ids"]):
            changes["SecurityGroupIds"] = p["security_group_ids"]
        return changes

    def security_groups(self, group: dict[str, Any]) -> list[str] | None:
        """The nodes' security groups, read from the first member cluster."""
        members = group.get("MemberClusters") or []
        if not members:
            return None
        try:
            clusters = self.client.describe_cache_clusters(CacheClusterId=members[0])["CacheClusters"]
        except is_boto3_error_code("CacheClusterNotFound"):
            # A member still being created (or an emulator that lists members it cannot describe).
            return None
        return [sg["SecurityGroupId"] for sg in clusters[0].get("SecurityGroups", [])]

    def present(self) -> dict[str, Any]:
        group = self.describe()
        changed = False
        if group is None:
            changed = True
            if not self.module.check_mode:
                self.create()
                self.wait("replication_group_available")
        else:
            changes = self.differences(group)
            if changes:
                changed = True
                if not self.module.check_mode:
                    self.client.modify_replication_group(
                        ReplicationGroupId=self.group_id, ApplyImmediately=True, **changes
                    )
                    self.wait("replication_group_available")
        group = self.describe() or {}
        endpoint: dict[str, Any] = {}
        node_groups = group.get("NodeGroups") or []
        if node_groups and node_groups[0].get("PrimaryEndpoint"):
            endpoint = node_groups[0]["PrimaryEndpoint"]
        elif group.get("ConfigurationEndpoint"):
            endpoint = group["ConfigurationEndpoint"]
        return {
            "changed": changed,
            "replication_group": camel_dict_to_snake_dict(group),
            "primary_endpoint": camel_dict_to_snake_dict(endpoint),
        }

    def absent(self) -> dict[str, Any]:
        group = self.describe()
        if group is None:
            return {"changed": False, "replication_group": {}}
        if not self.module.check_mode:
            # A deletion already under way (an earlier, interrupted run) is waited for all the same.
            if group.get("Status") != "deleting":
                self.client.delete_replication_group(
                    ReplicationGroupId=self.group_id, RetainPrimaryCluster=False
                )
            self.wait("replication_group_deleted")
        return {"changed": True, "replication_group": {}}


def main() -> None:
    argument_spec = {
        "replication_group_id": {"type": "str", "required": True},
        "description": {"type": "str", "default": "Redis"},
        "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        "node_type": {"type": "str"},
        "engine_version": {"type": "str", "default": "7.1"},
        "num_cache_clusters": {"type": "int", "default": 1},
        "cache_subnet_group_name": {"type": "str"},
        "security_group_ids": {"type": "list", "elements": "str", "default": []},
        "port": {"type": "int", "default": 6379},
        "transit_encryption": {"type": "bool", "default": True},
        "at_rest_encryption": {"type": "bool", "default": True},
        "auth_token": {"type": "str", "no_log": True},
        "snapshot_retention_limit": {"type": "int", "default": 0},
        "tags": {"type": "dict", "default": {}},
        "wait": {"type": "bool", "default": True},
        "wait_timeout": {"type": "int", "default": 1800},
    }
    module = AnsibleAWSModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        required_if=[("state", "present", ("node_type", "cache_subnet_group_name"))],
    )
    if module.params["auth_token"] and not module.params["transit_encryption"]:
        module.fail_json(msg="auth_token needs transit_encryption: Redis AUTH is only sent over TLS")
    group = ReplicationGroup(module)
    try:
        result = group.present() if module.params["state"] == "present" else group.absent()
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        module.fail_json_aws(exc, msg=f"Cannot manage replication group {group.group_id}")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
