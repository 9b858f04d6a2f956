"""The engine on GPU hosts (scale_out_engine_capacity: gpu) against moto_server.

network.yml, identity.yml and services.yml build what the engine needs (the data layer plays
no part in it), then the GPU hosts are inspected through boto3, services.yml runs again, and
teardown.yml removes everything. moto's gaps are named where they bend an assertion.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import boto3
import pytest

from tests.aws.test_scale_out_track import (
    MOTO_ALWAYS_CHANGED,
    MOTO_CHANGED_ON_SECOND_RUN,
    REGION,
    STACK,
    service_images,
)
from tests.conftest import REPO
from tests.scale_out_run import Run, run_playbook

pytestmark = pytest.mark.aws

GPU = f"{STACK}-gpu"
AMI_PARAMETER = "/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/recommended/image_id"
# A zone of its own: moto_server is shared by the session, and a second zone named like the
# track test's would take that test's DNS record (route53 picks the first zone of a name).
DOMAIN, ZONE = "play.gpu.example.net", "gpu.example.net"
EXTRA = {
    "scale_out_engine_capacity": "gpu",
    "scale_out_gpu_instance_types": ["g4dn.xlarge", "g4dn.2xlarge"],
    "scale_out_domain": DOMAIN,
    "scale_out_hosted_zone": ZONE,
}


class GpuStack:
    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.runs: dict[str, Run] = {}

    def client(self, service: str):
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def play(self, name: str) -> Run:
        return run_playbook(name, self.endpoint, {"scale_out_certificate_arn": self.cert, **EXTRA})


@pytest.fixture(scope="module")
def gpu(moto_server: str) -> Iterator[GpuStack]:
    s = GpuStack(moto_server)
    s.cert = s.client("acm").request_certificate(DomainName=DOMAIN)["CertificateArn"]
    s.client("route53").create_hosted_zone(Name=ZONE, CallerReference="tengen-gpu-test")
    for layer in ("network.yml", "identity.yml", "services.yml"):
        run = s.play(layer)
        assert run.rc == 0, run.output[-4000:]
        s.runs[layer] = run
    yield s


def test_hosts_come_from_a_launch_template_of_the_gpu_ami(gpu: GpuStack) -> None:
    ec2 = gpu.client("ec2")
    ami = gpu.client("ssm").get_parameter(Name=AMI_PARAMETER)["Parameter"]["Value"]
    templates = ec2.describe_launch_templates(LaunchTemplateNames=[GPU])["LaunchTemplates"]
    assert len(templates) == 1
    # moto lists a launch template's tags through DescribeTags only.
    tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [templates[0]["LaunchTemplateId"]]}])
    assert {t["Key"]: t["Value"] for t in tags["Tags"]}["tengen:stack"] == STACK
    data = ec2.describe_launch_template_versions(LaunchTemplateName=GPU, Versions=["$Latest"])[
        "LaunchTemplateVersions"
    ][0]["LaunchTemplateData"]
    assert data["ImageId"] == ami
    assert data["InstanceType"] == "g4dn.xlarge"
    assert data["IamInstanceProfile"]["Arn"].endswith(f"instance-profile/{GPU}-host")
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    assert f"echo ECS_CLUSTER={STACK} >> /etc/ecs/ecs.config\n" in base64.b64decode(data["UserData"]).decode()
    engine_sg = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [f"{STACK}-engine"]}])[
        "SecurityGroups"
    ][0]["GroupId"]
    (interface,) = data["NetworkInterfaces"]
    assert interface["Groups"] == [engine_sg]
    # Tasks run in the public subnets without NAT: the host's public address pulls and logs.
    assert interface["AssociatePublicIpAddress"] is True
    iam = gpu.client("iam")
    attached = iam.list_attached_role_policies(RoleName=f"{GPU}-host")["AttachedPolicies"]
    assert [p["PolicyName"] for p in attached] == ["AmazonEC2ContainerServiceforEC2Role"]
    profile = iam.get_instance_profile(InstanceProfileName=f"{GPU}-host")["InstanceProfile"]
    assert [r["RoleName"] for r in profile["Roles"]] == [f"{GPU}-host"]


def test_auto_scaling_group_runs_spot_above_the_on_demand_base(gpu: GpuStack) -> None:
    (group,) = gpu.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[GPU])[
        "AutoScalingGroups"
    ]
    policy = group["MixedInstancesPolicy"]
    assert policy["LaunchTemplate"]["LaunchTemplateSpecification"]["LaunchTemplateName"] == GPU
    assert [o["InstanceType"] for o in policy["LaunchTemplate"]["Overrides"]] == [
        "g4dn.xlarge",
        "g4dn.2xlarge",
    ]
    distribution = policy["InstancesDistribution"]
    assert (
        distribution["OnDemandBaseCapacity"],
        distribution["OnDemandPercentageAboveBaseCapacity"],
        distribution["SpotAllocationStrategy"],
    ) == (0, 0, "price-capacity-optimized")
    # ECS's managed scaling sets the desired capacity; at most one host per engine task.
    assert (group["MinSize"], group["MaxSize"]) == (0, 3)
    subnets = gpu.client("ec2").describe_subnets(SubnetIds=group["VPCZoneIdentifier"].split(","))["Subnets"]
    assert {s["CidrBlock"] for s in subnets} == {"10.40.0.0/24", "10.40.1.0/24"}
    assert {t["Key"]: t["Value"] for t in group["Tags"]}["tengen:stack"] == STACK


def test_capacity_provider_scales_the_group_and_joins_the_cluster(gpu: GpuStack) -> None:
    ecs = gpu.client("ecs")
    group_arn = gpu.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[GPU])[
        "AutoScalingGroups"
    ][0]["AutoScalingGroupARN"]
    (provider,) = ecs.describe_capacity_providers(capacityProviders=[GPU])["capacityProviders"]
    asg = provider["autoScalingGroupProvider"]
    assert asg["autoScalingGroupArn"] == group_arn
    assert (asg["managedScaling"]["status"], asg["managedScaling"]["targetCapacity"]) == ("ENABLED", 100)
    assert asg["managedTerminationProtection"] == "DISABLED"
    (cluster,) = ecs.describe_clusters(clusters=[STACK])["clusters"]
    assert cluster["capacityProviders"] == ["FARGATE", "FARGATE_SPOT", GPU]
    # The default strategy stays Fargate's: only the engine asks for the GPU hosts.
    assert {s["capacityProvider"] for s in cluster["defaultCapacityProviderStrategy"]} == {
        "FARGATE",
        "FARGATE_SPOT",
    }


def test_engine_task_definition_requires_a_gpu_on_ec2(gpu: GpuStack) -> None:
    ecs = gpu.client("ecs")
    engine = ecs.describe_task_definition(taskDefinition=f"{STACK}-engine")["taskDefinition"]
    assert engine["requiresCompatibilities"] == ["EC2"]
    assert engine["networkMode"] == "awsvpc"
    assert engine["containerDefinitions"][0]["resourceRequirements"] == [{"type": "GPU", "value": "1"}]
    # The engine runs the CUDA build of files/engine/Dockerfile.gpu, under its own digest tag.
    gpu_tag = service_images(str(REPO / "files"), "katago-gpu")["engine"]["tag"]
    assert engine["containerDefinitions"][0]["image"].endswith(f"/{STACK}/engine:{gpu_tag}")
    for name in ("backend", "web"):
        other = ecs.describe_task_definition(taskDefinition=f"{STACK}-{name}")["taskDefinition"]
        assert other["requiresCompatibilities"] == ["FARGATE"]
        assert "resourceRequirements" not in other["containerDefinitions"][0]
    services = {
        s["serviceName"]: s
        for s in ecs.describe_services(cluster=STACK, services=["backend", "engine"])["services"]
    }
    # moto stores a capacity provider strategy as launch type EC2 without the strategy
    # (tests/aws/moto-vars.yml), so here the engine runs with the fixed launch type EC2.
    assert services["engine"]["launchType"] == "EC2"
    assert services["backend"]["launchType"] == "FARGATE"
    net = services["engine"]["networkConfiguration"]["awsvpcConfiguration"]
    assert net.get("assignPublicIp", "DISABLED") == "DISABLED"
    assert services["backend"]["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"] == "ENABLED"


def test_second_run_changes_nothing_but_named_moto_gaps(gpu: GpuStack) -> None:
    again = gpu.play("services.yml")
    assert again.rc == 0, again.output[-4000:]
    assert set(again.changed_tasks) <= MOTO_ALWAYS_CHANGED | MOTO_CHANGED_ON_SECOND_RUN, again.changed_tasks
    assert not [t for t in again.changed_tasks if "gpu |" in t]


def test_teardown_removes_the_gpu_hosts(gpu: GpuStack) -> None:
    down = gpu.play("teardown.yml")
    assert down.rc == 0, down.output[-4000:]
    # This stack's only: other tests of the session share moto_server.
    assert (
        gpu.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[GPU])[
            "AutoScalingGroups"
        ]
        == []
    )
    named = [{"Name": "launch-template-name", "Values": [GPU]}]
    assert gpu.client("ec2").describe_launch_templates(Filters=named)["LaunchTemplates"] == []
    ecs = gpu.client("ecs")
    providers = ecs.describe_capacity_providers(capacityProviders=[GPU])["capacityProviders"]
    assert [p for p in providers if p.get("status") == "ACTIVE"] == []
    iam = gpu.client("iam")
    assert [r["RoleName"] for r in iam.list_roles()["Roles"] if r["RoleName"].startswith(STACK)] == []
    assert iam.list_instance_profiles()["InstanceProfiles"] == []
    assert [c for c in ecs.describe_clusters(clusters=[STACK])["clusters"] if c["status"] == "ACTIVE"] == []
    tagged = gpu.client("resourcegroupstaggingapi").get_resources(
        TagFilters=[{"Key": "tengen:stack", "Values": [STACK]}]
    )["ResourceTagMappingList"]
    # As in test_scale_out_track: secrets in their recovery window and deleted (INACTIVE) ECS
    # services are gone in all but name, as on AWS.
    sm = gpu.client("secretsmanager")
    leftover = []
    for arn in (r["ResourceARN"] for r in tagged):
        if ":secretsmanager:" in arn and "DeletedDate" in sm.describe_secret(SecretId=arn):
            continue
        if ":ecs:" in arn and ":service/" in arn:
            if all(
                s["status"] == "INACTIVE"
                for s in ecs.describe_services(cluster=STACK, services=[arn])["services"]
            ):
                continue
        leftover.append(arn)
    assert leftover == []
