#!/usr/bin/python
"""Manage an AWS Cloud Map private DNS namespace and one service in it."""

from __future__ import annotations

DOCUMENTATION = r"""
module: service_discovery
short_description: Manage a Cloud Map private DNS namespace and a service in it
description:
  - Ensures an AWS Cloud Map (servicediscovery) private DNS namespace bound to a VPC, and a
    service in it that answers with A records, so that ECS tasks registered with the service
    are reachable as C(<service_name>.<namespace>) from inside the VPC.
  - The service uses custom health checking (C(HealthCheckCustomConfig)), so ECS reports the
    health of the tasks it registers and unhealthy tasks leave the DNS answers.
  - A namespace is identified by its name and VPC. Its private hosted zone is read through
    Route53 to find the VPC it is associated with.
  - The record TTL and the tags are updated in place. The routing policy and the custom health
    check are fixed at creation; a service without custom health checking fails, naming it.
  - Namespace creation and deletion are asynchronous; the module waits for the operation.
  - With I(state=absent) the service is deleted, then the namespace if no other service is
    left in it (a namespace that still holds services is kept, with a warning).
  - ECS registers tasks only when its service names the Cloud Map service ARN in
    C(serviceRegistries) (community.aws.ecs_service I(service_registries)).
version_added: 0.1.0
author: tengen maintainers
options:
  namespace:
    description: Name of the private DNS namespace, for example C(tengen-staging.internal).
    type: str
    required: true
  vpc_id:
    description:
      - The VPC the namespace is bound to.
      - Required with I(state=present). With I(state=absent) it may be omitted when no other
        namespace has the same name.
    type: str
  service_name:
    description: Name of the service in the namespace (the first label of the DNS name).
    type: str
    required: true
  dns_ttl:
    description: TTL in seconds of the service's A records.
    type: int
    default: 60
  description:
    description: Description of the namespace, set at creation.
    type: str
    default: ""
  state:
    description: Whether the namespace and the service exist.
    type: str
    choices: [present, absent]
    default: present
  tags:
    description: Tags of the namespace and the service.
    type: dict
    default: {}
  purge_tags:
    description: Remove tags that I(tags) does not name.
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait for an asynchronous Cloud Map operation, and for a service that still
        has instances to become deletable (ECS deregisters tasks after its service is gone).
    type: int
    default: 300
notes:
  - Needs the servicediscovery permissions for namespaces, services, operations and tags, and
    C(route53:GetHostedZone) to read the VPC of a namespace.
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
- name: Give the engine the name engine.tengen-staging.internal inside the VPC
  tengen.ops.service_discovery:
    namespace: tengen-staging.internal
    vpc_id: vpc-0123456789abcdef0
    service_name: engine
    dns_ttl: 10
    tags:
      tengen:stack: tengen-staging
  register: discovery

- name: Register the engine's tasks under that name
  community.aws.ecs_service:
    name: engine
    cluster: tengen-staging
    task_definition: tengen-staging-engine
    # The ECS API key: the module hands the dicts to ECS in camelCase as they are.
    service_registries:
      - registryArn: "{{ discovery.service_arn }}"

- name: Remove the service, then the namespace if it is empty
  tengen.ops.service_discovery:
    namespace: tengen-staging.internal
    vpc_id: vpc-0123456789abcdef0
    service_name: engine
    state: absent
"""

RETURN = r"""
namespace_id:
  description: Id of the namespace; empty when absent, or in check mode before it is created.
  returned: always
  type: str
  sample: ns-abcdefgh12345678
namespace_arn:
  description: ARN of the namespace; empty when absent, or in check mode before it is created.
  returned: always
  type: str
  sample: arn:aws:servicediscovery:eu-west-1:123456789012:namespace/ns-abcdefgh12345678
service_id:
  description: Id of the service; empty when absent, or in check mode before it is created.
  returned: always
  type: str
  sample: srv-abcdefgh12345678
service_arn:
  description:
    - ARN of the service, for ECS C(serviceRegistries).
    - Empty when absent, or in check mode before it is created.
  returned: always
  type: str
  sample: arn:aws:servicediscovery:eu-west-1:123456789012:service/srv-abcdefgh12345678
namespace:
  description: The namespace as Cloud Map describes it (snake_case keys); empty when absent.
  returned: always
  type: dict
  sample: {id: ns-abcdefgh12345678, name: tengen-staging.internal, type: DNS_PRIVATE,
           properties: {dns_properties: {hosted_zone_id: Z0123456789ABCDEFGHIJ}}}
service:
  description: The service as Cloud Map describes it (snake_case keys); empty when absent.
  returned: always
  type: dict
  sample: {id: srv-abcdefgh12345678, name: engine, namespace_id: ns-abcdefgh12345678,
           dns_config: {routing_policy: MULTIVALUE, dns_records: [{type: A, ttl: 10}]},
           health_check_custom_config: {failure_threshold: 1}}
"""

import time  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.common.dict_transformations import camel_dict_to_snake_dict  # noqa: E402
from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code  # noqa: E402
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402
from ansible_collections.amazon.aws.plugins.module_utils.tagging import (  # noqa: E402
    ansible_dict_to_boto3_tag_list,
    boto3_tag_list_to_ansible_dict,
    compare_aws_tags,
)

try:
    import botocore
except ImportError:
    pass  # AnsibleAWSModule reports a missing botocore

POLL_SECONDS = 3


class Discovery:
    def __init__(self, module: AnsibleAWSModule) -> None:
        self.module = module
        self.params = module.params
        self.client = module.client("servicediscovery")
        self.route53 = module.client("route53")
        self.name: str = self.params["namespace"]
        self.changed = False

    # --- reading -------------------------------------------------------------------------

    def zone_vpcs(self, namespace: dict[str, Any]) -> list[str]:
        zone = namespace.get("Properties", {}).get("DnsProperties", {}).get("HostedZoneId")
        if not zone:
            return []
        try:
            found = self.route53.get_hosted_zone(Id=zone)
        except is_boto3_error_code("NoSuchHostedZone"):
            return []
        return [vpc["VPCId"] for vpc in found.get("VPCs", [])]

    def find_namespace(self) -> dict[str, Any] | None:
        """The private DNS namespace of this name bound to vpc_id (any of the name without vpc_id)."""
        candidates = []
        paginator = self.client.get_paginator("list_namespaces")
        filters = [{"Name": "TYPE", "Values": ["DNS_PRIVATE"], "Condition": "EQ"}]
        for page in paginator.paginate(Filters=filters):
            # The name is compared here as well: not every endpoint applies the filters.
            candidates += [
                ns for ns in page["Namespaces"] if ns["Name"] == self.name and ns["Type"] == "DNS_PRIVATE"
            ]
        vpc = self.params["vpc_id"]
        if vpc:
            bound = {ns["Id"]: self.zone_vpcs(ns) for ns in candidates}
            matches = [ns for ns in candidates if vpc in bound[ns["Id"]]]
            if not matches:
                # A private zone always has a VPC on AWS; when the zone reports none the
                # binding cannot be read, and a single such namespace of this name is taken.
                unknown = [ns for ns in candidates if not bound[ns["Id"]]]
                matches = unknown if len(unknown) == 1 else []
        else:
            matches = candidates
        if len(matches) > 1:
            self.module.fail_json(
                msg=f"{len(matches)} private DNS namespaces are named {self.name}; give vpc_id to choose one"
            )
        if not matches:
            return None
        return self.client.get_namespace(Id=matches[0]["Id"])["Namespace"]

    def find_service(self, namespace_id: str) -> dict[str, Any] | None:
        paginator = self.client.get_paginator("list_services")
        filters = [{"Name": "NAMESPACE_ID", "Values": [namespace_id], "Condition": "EQ"}]
        for page in paginator.paginate(Filters=filters):
            for summary in page["Services"]:
                if summary["Name"] != self.params["service_name"]:
                    continue
                service = self.client.get_service(Id=summary["Id"])["Service"]
                # Summaries carry no namespace id; the full description does.
                if service.get("NamespaceId") == namespace_id:
                    return service
        return None

    def services_in(self, namespace_id: str) -> list[str]:
        names = []
        paginator = self.client.get_paginator("list_services")
        filters = [{"Name": "NAMESPACE_ID", "Values": [namespace_id], "Condition": "EQ"}]
        for page in paginator.paginate(Filters=filters):
            for summary in page["Services"]:
                service = self.client.get_service(Id=summary["Id"])["Service"]
                if service.get("NamespaceId") == namespace_id:
                    names.append(service["Name"])
        return names

    # --- writing -------------------------------------------------------------------------

    def wait_operation(self, operation_id: str, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.params["wait_timeout"]
        while True:
            operation = self.client.get_operation(OperationId=operation_id)["Operation"]
            if operation["Status"] == "SUCCESS":
                return operation
            if operation["Status"] == "FAIL":
                reason = operation.get("ErrorMessage") or operation.get("ErrorCode", "")
                self.module.fail_json(
                    msg=f"Cloud Map could not {what}: {reason}",
                    operation=camel_dict_to_snake_dict(operation),
                )
            if time.monotonic() > deadline:
                self.module.fail_json(
                    msg=f"Cloud Map did not {what} within {self.params['wait_timeout']} s "
                    f"(operation {operation_id} is {operation['Status']})"
                )
            time.sleep(POLL_SECONDS)

    def ensure_tags(self, arn: str) -> None:
        current = boto3_tag_list_to_ansible_dict(self.client.list_tags_for_resource(ResourceARN=arn)["Tags"])
        wanted = {k: str(v) for k, v in self.params["tags"].items()}
        to_set, to_unset = compare_aws_tags(current, wanted, purge_tags=self.params["purge_tags"])
        if not (to_set or to_unset):
            return
        self.changed = True
        if self.module.check_mode:
            return
        if to_unset:
            self.client.untag_resource(ResourceARN=arn, TagKeys=to_unset)
        if to_set:
            self.client.tag_resource(ResourceARN=arn, Tags=ansible_dict_to_boto3_tag_list(to_set))

    def records(self) -> list[dict[str, Any]]:
        return [{"Type": "A", "TTL": self.params["dns_ttl"]}]

    def ensure_namespace(self) -> dict[str, Any] | None:
        namespace = self.find_namespace()
        if namespace is None:
            self.changed = True
            if self.module.check_mode:
                return None
            extra = {"Description": self.params["description"]} if self.params["description"] else {}
            operation_id = self.client.create_private_dns_namespace(
                Name=self.name,
                Vpc=self.params["vpc_id"],
                Tags=ansible_dict_to_boto3_tag_list({k: str(v) for k, v in self.params["tags"].items()}),
                **extra,
            )["OperationId"]
            operation = self.wait_operation(operation_id, f"create namespace {self.name}")
            return self.client.get_namespace(Id=operation["Targets"]["NAMESPACE"])["Namespace"]
        self.ensure_tags(namespace["Arn"])
        return namespace

    def ensure_service(self, namespace: dict[str, Any] | None) -> dict[str, Any] | None:
        name = self.params["service_name"]
        service = self.find_service(namespace["Id"]) if namespace else None
        if service is None:
            self.changed = True
            if self.module.check_mode:
                return None
            return self.client.create_service(
                Name=name,
                NamespaceId=namespace["Id"],
                DnsConfig={"RoutingPolicy": "MULTIVALUE", "DnsRecords": self.records()},
                HealthCheckCustomConfig={"FailureThreshold": 1},
                Tags=ansible_dict_to_boto3_tag_list({k: str(v) for k, v in self.params["tags"].items()}),
            )["Service"]
        if not service.get("HealthCheckCustomConfig"):
            self.module.fail_json(
                msg=f"Service {name} in {self.name} has no custom health check, which Cloud Map cannot add "
                "to an existing service; delete the service (state=absent) and run again"
            )
        current = [
            {"Type": r["Type"], "TTL": r["TTL"]}
            for r in (service.get("DnsConfig") or {}).get("DnsRecords", [])
        ]
        if current != self.records():
            self.changed = True
            if not self.module.check_mode:
                operation_id = self.client.update_service(
                    Id=service["Id"], Service={"DnsConfig": {"DnsRecords": self.records()}}
                )["OperationId"]
                self.wait_operation(operation_id, f"update service {name}")
                service = self.client.get_service(Id=service["Id"])["Service"]
        self.ensure_tags(service["Arn"])
        return service

    def delete_service(self, service: dict[str, Any]) -> None:
        deadline = time.monotonic() + self.params["wait_timeout"]
        while True:
            try:
                self.client.delete_service(Id=service["Id"])
                return
            except is_boto3_error_code("ResourceInUse"):
                # Instances are still registered: ECS removes them shortly after its service.
                if time.monotonic() > deadline:
                    self.module.fail_json(
                        msg=f"Service {service['Name']} in {self.name} still has registered instances "
                        f"after {self.params['wait_timeout']} s"
                    )
                time.sleep(POLL_SECONDS)

    # --- states --------------------------------------------------------------------------

    def present(self) -> dict[str, Any]:
        namespace = self.ensure_namespace()
        service = self.ensure_service(namespace)
        return self.result(namespace, service)

    def absent(self) -> dict[str, Any]:
        namespace = self.find_namespace()
        if namespace is None:
            return self.result(None, None)
        service = self.find_service(namespace["Id"])
        if service is not None:
            self.changed = True
            if not self.module.check_mode:
                self.delete_service(service)
        others = [n for n in self.services_in(namespace["Id"]) if n != self.params["service_name"]]
        if others:
            self.module.warn(f"Namespace {self.name} is kept: it still holds {', '.join(sorted(others))}")
            return self.result(namespace, None)
        self.changed = True
        if not self.module.check_mode:
            operation_id = self.client.delete_namespace(Id=namespace["Id"])["OperationId"]
            self.wait_operation(operation_id, f"delete namespace {self.name}")
        return self.result(None, None)

    def result(self, namespace: dict[str, Any] | None, service: dict[str, Any] | None) -> dict[str, Any]:
        namespace = namespace or {}
        service = service or {}
        return {
            "changed": self.changed,
            "namespace_id": namespace.get("Id", ""),
            "namespace_arn": namespace.get("Arn", ""),
            "service_id": service.get("Id", ""),
            "service_arn": service.get("Arn", ""),
            "namespace": camel_dict_to_snake_dict(namespace),
            "service": camel_dict_to_snake_dict(service),
        }


def main() -> None:
    argument_spec = {
        "namespace": {"type": "str", "required": True},
        "vpc_id": {"type": "str"},
        "service_name": {"type": "str", "required": True},
        "dns_ttl": {"type": "int", "default": 60},
        "description": {"type": "str", "default": ""},
        "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        "tags": {"type": "dict", "default": {}},
        "purge_tags": {"type": "bool", "default": True},
        "wait_timeout": {"type": "int", "default": 300},
    }
    module = AnsibleAWSModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        required_if=[("state", "present", ("vpc_id",))],
    )
    discovery = Discovery(module)
    try:
        result = discovery.present() if module.params["state"] == "present" else discovery.absent()
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        module.fail_json_aws(exc, msg=f"Cannot manage Cloud Map namespace {discovery.name}")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
