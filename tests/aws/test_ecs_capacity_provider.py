"""tengen.ops.ecs_capacity_provider on its own against moto_server: check mode, create, re-run,
update in place, a provider bound to another group refused, delete, delete again."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import boto3
import pytest

pytestmark = pytest.mark.aws

REPO = Path(__file__).resolve().parent.parent.parent
NAME = "probe-gpu"


def run_module(args: dict, check: bool = False) -> dict:
    """The module's result, run ad hoc on localhost as a task would run it."""
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        "ANSIBLE_STDOUT_CALLBACK": "json",
    }
    cmd = ["ansible", "localhost", "-m", "tengen.ops.ecs_capacity_provider", "-a", json.dumps(args)]
    if check:
        cmd.append("--check")
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode in (0, 2), proc.stdout + proc.stderr
    document, _ = json.JSONDecoder().raw_decode(proc.stdout[proc.stdout.index("{") :])
    return document["plays"][0]["tasks"][0]["hosts"]["localhost"]


def group(name: str) -> str:
    """An Auto Scaling group of one launch template; its ARN."""
    ec2, asg = boto3.client("ec2"), boto3.client("autoscaling")
    vpc = ec2.create_vpc(CidrBlock="10.78.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.78.0.0/24", AvailabilityZone="eu-west-1a")
    ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData={"ImageId": ami})
    asg.create_auto_scaling_group(
        AutoScalingGroupName=name,
        MinSize=0,
        MaxSize=2,
        LaunchTemplate={"LaunchTemplateName": name, "Version": "$Latest"},
        VPCZoneIdentifier=subnet["Subnet"]["SubnetId"],
    )
    return asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0][
        "AutoScalingGroupARN"
    ]


def providers(ecs) -> list[dict]:
    found = ecs.describe_capacity_providers(capacityProviders=[NAME])["capacityProviders"]
    return [p for p in found if p.get("status") == "ACTIVE"]


def test_present_update_refusal_absent(aws_env: str) -> None:
    ecs = boto3.client("ecs")
    arn = group("probe-gpu-hosts")
    args = {
        "name": NAME,
        "auto_scaling_group_arn": arn,
        "managed_scaling": {"target_capacity": 100, "maximum_scaling_step_size": 2},
        "tags": {"tengen:stack": "probe"},
    }

    dry = run_module(args, check=True)
    assert dry["changed"] is True and providers(ecs) == []

    first = run_module(args)
    assert first["changed"] is True and not first.get("failed"), first
    (made,) = providers(ecs)
    scaling = made["autoScalingGroupProvider"]["managedScaling"]
    assert made["autoScalingGroupProvider"]["autoScalingGroupArn"] == arn
    assert (scaling["status"], scaling["targetCapacity"], scaling["maximumScalingStepSize"]) == (
        "ENABLED",
        100,
        2,
    )
    assert made["autoScalingGroupProvider"]["managedTerminationProtection"] == "DISABLED"
    assert first["capacity_provider"]["name"] == NAME

    again = run_module(args)
    assert again["changed"] is False and not again.get("failed"), again

    spare = {**args, "managed_scaling": {"target_capacity": 80, "maximum_scaling_step_size": 2}}
    dry_update = run_module(spare, check=True)
    assert dry_update["changed"] is True and dry_update["updated"] == ["managedScaling.targetCapacity"]
    assert providers(ecs)[0]["autoScalingGroupProvider"]["managedScaling"]["targetCapacity"] == 100
    updated = run_module(spare)
    assert updated["changed"] is True and updated["updated"] == ["managedScaling.targetCapacity"]
    assert providers(ecs)[0]["autoScalingGroupProvider"]["managedScaling"]["targetCapacity"] == 80
    assert run_module(spare)["changed"] is False

    other = run_module({**spare, "auto_scaling_group_arn": arn.replace("probe-gpu-hosts", "elsewhere")})
    assert other.get("failed") and "ECS cannot change it" in other["msg"] and "elsewhere" in other["msg"]

    gone = run_module({"name": NAME, "state": "absent"})
    assert gone["changed"] is True and providers(ecs) == []
    assert run_module({"name": NAME, "state": "absent"})["changed"] is False
