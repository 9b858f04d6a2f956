"""tengen.ops.service_discovery on its own against moto_server: create, re-run, check mode, delete."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import boto3
import pytest

pytestmark = pytest.mark.aws

REPO = Path(__file__).resolve().parent.parent.parent
NAMESPACE = "probe-stack.internal"


def run_module(args: dict, check: bool = False) -> dict:
    """The module's result, run ad hoc on localhost as a task would run it."""
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        "ANSIBLE_STDOUT_CALLBACK": "json",
    }
    cmd = ["ansible", "localhost", "-m", "tengen.ops.service_discovery", "-a", json.dumps(args)]
    if check:
        cmd.append("--check")
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode in (0, 2), proc.stdout + proc.stderr
    # The JSON document, without the task timing ansible.cfg prints around it.
    document, _ = json.JSONDecoder().raw_decode(proc.stdout[proc.stdout.index("{") :])
    result = document["plays"][0]["tasks"][0]["hosts"]["localhost"]
    assert not result.get("failed"), result
    return result


def namespaces(sd) -> list[dict]:
    return [n for n in sd.list_namespaces()["Namespaces"] if n["Name"] == NAMESPACE]


def test_present_absent_idempotent_and_check_mode(aws_env: str) -> None:
    sd = boto3.client("servicediscovery")
    vpc = boto3.client("ec2").create_vpc(CidrBlock="10.77.0.0/16")["Vpc"]["VpcId"]
    args = {
        "namespace": NAMESPACE,
        "vpc_id": vpc,
        "service_name": "engine",
        "dns_ttl": 15,
        "tags": {"k": "v"},
    }

    dry = run_module(args, check=True)
    assert dry["changed"] is True and dry["service_arn"] == ""
    assert namespaces(sd) == []

    first = run_module(args)
    assert first["changed"] is True
    assert [n["Id"] for n in namespaces(sd)] == [first["namespace_id"]]
    service = sd.get_service(Id=first["service_id"])["Service"]
    assert service["Arn"] == first["service_arn"]
    assert service["DnsConfig"]["DnsRecords"] == [{"Type": "A", "TTL": 15}]
    assert service["HealthCheckCustomConfig"] == {"FailureThreshold": 1}
    assert sd.list_tags_for_resource(ResourceARN=first["namespace_arn"])["Tags"] == [
        {"Key": "k", "Value": "v"}
    ]

    again = run_module(args)
    assert again["changed"] is False
    assert (again["namespace_id"], again["service_arn"]) == (first["namespace_id"], first["service_arn"])

    # A new TTL and tag: reported in check mode, written without it, in place.
    changed = {**args, "dns_ttl": 30, "tags": {"k": "w"}}
    assert run_module(changed, check=True)["changed"] is True
    assert sd.get_service(Id=first["service_id"])["Service"]["DnsConfig"]["DnsRecords"][0]["TTL"] == 15
    updated = run_module(changed)
    assert updated["changed"] is True and updated["service_id"] == first["service_id"]
    assert sd.get_service(Id=first["service_id"])["Service"]["DnsConfig"]["DnsRecords"][0]["TTL"] == 30
    assert sd.list_tags_for_resource(ResourceARN=first["service_arn"])["Tags"] == [{"Key": "k", "Value": "w"}]

    # A service the module did not create keeps the namespace alive.
    other = sd.create_service(
        Name="other", NamespaceId=first["namespace_id"], DnsConfig={"DnsRecords": [{"Type": "A", "TTL": 60}]}
    )["Service"]
    absent = {"namespace": NAMESPACE, "vpc_id": vpc, "service_name": "engine", "state": "absent"}
    kept = run_module(absent)
    assert kept["changed"] is True and kept["namespace_id"] == first["namespace_id"]
    assert any("still holds other" in w for w in kept.get("warnings", [])), kept
    with pytest.raises(sd.exceptions.ServiceNotFound):
        sd.get_service(Id=first["service_id"])
    sd.delete_service(Id=other["Id"])

    gone = run_module(absent)
    assert gone["changed"] is True and gone["namespace_id"] == ""
    assert namespaces(sd) == []
    assert run_module(absent)["changed"] is False
    boto3.client("ec2").delete_vpc(VpcId=vpc)
