"""The whole scale-out track against moto_server: build, inspect, re-run, check mode, teardown.

The tests share one deployed stack and run in file order. moto's gaps are handled by
tests/aws/moto-vars.yml (each override names its gap) and by the allow-lists below.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import boto3
import botocore.exceptions
import pytest

from tests.conftest import REPO
from tests.scale_out_run import Run, run_playbook

sys.path.insert(0, str(REPO / "collections"))
from ansible_collections.tengen.ops.plugins.lookup.service_images import service_images  # noqa: E402

pytestmark = pytest.mark.aws

STACK = "tengen-staging"
REGION = "eu-west-1"
TAG = {"Name": "tag:tengen:stack", "Values": [STACK]}

# Tasks moto makes report "changed" on every run, each for a named reason:
MOTO_ALWAYS_CHANGED = {
    # describe_scaling_policies ignores PolicyNames in moto and returns the service's first
    # (CPU) policy, so the module sees a difference for the requests-per-target policy.
    "aws_services : autoscaling | Track ALB requests per target for the services behind the ALB",
}
# Tasks moto makes report "changed" on the second run only: moto drops
# healthCheckGracePeriodSeconds when it creates a service and stores it on the first update,
# so backend and web (the services behind the ALB) are updated once.
MOTO_CHANGED_ON_SECOND_RUN = {
    "aws_services : services | Run each service (circuit breaker rolls a failed deployment back)",
}


class Stack:
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

    def play(self, name: str, check: bool = False, extra: dict | None = None) -> Run:
        return run_playbook(
            name, self.endpoint, {"scale_out_certificate_arn": self.cert, **(extra or {})}, check=check
        )


@pytest.fixture(scope="module")
def stack(moto_server: str) -> Iterator[Stack]:
    s = Stack(moto_server)
    # What an operator has before the track: a certificate and the public zone.
    s.cert = s.client("acm").request_certificate(DomainName="play.example.org")["CertificateArn"]
    s.zone_id = s.client("route53").create_hosted_zone(Name="example.org", CallerReference="tengen-aws-test")[
        "HostedZone"
    ]["Id"]
    first = s.play("all.yml")
    assert first.rc == 0, first.output[-4000:]
    assert first.changed > 0
    s.runs["first"] = first
    yield s


def test_network_spans_two_zones_with_tagged_subnets(stack: Stack) -> None:
    ec2 = stack.client("ec2")
    vpcs = ec2.describe_vpcs(Filters=[TAG])["Vpcs"]
    assert [v["CidrBlock"] for v in vpcs] == ["10.40.0.0/16"]
    subnets = ec2.describe_subnets(Filters=[TAG])["Subnets"]
    tiers = {
        (s["CidrBlock"], s["AvailabilityZone"], {t["Key"]: t["Value"] for t in s["Tags"]}["tengen:tier"])
        for s in subnets
    }
    assert tiers == {
        ("10.40.0.0/24", "eu-west-1a", "public"),
        ("10.40.1.0/24", "eu-west-1b", "public"),
        ("10.40.10.0/24", "eu-west-1a", "private"),
        ("10.40.11.0/24", "eu-west-1b", "private"),
    }
    assert all(
        s["MapPublicIpOnLaunch"] == (s["CidrBlock"] in ("10.40.0.0/24", "10.40.1.0/24")) for s in subnets
    )
    routes = ec2.describe_route_tables(Filters=[TAG])["RouteTables"]
    by_name = {{t["Key"]: t["Value"] for t in r["Tags"]}["Name"]: r for r in routes}
    public_default = [
        r for r in by_name[f"{STACK}-public"]["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0"
    ]
    assert public_default and public_default[0]["GatewayId"].startswith("igw-")
    # NAT is off by default: the private subnets have no way out.
    assert not [
        r for r in by_name[f"{STACK}-private"]["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0"
    ]
    assert "NAT gateway off: about 35.04 USD a month" in stack.runs["first"].output


def _rules(perms: list[dict]) -> set[tuple]:
    out = set()
    for p in perms:
        for r in p.get("IpRanges", []):
            out.add((p["IpProtocol"], p.get("FromPort"), r["CidrIp"]))
        for r in p.get("Ipv6Ranges", []):
            out.add((p["IpProtocol"], p.get("FromPort"), r["CidrIpv6"]))
        for g in p.get("UserIdGroupPairs", []):
            out.add((p["IpProtocol"], p.get("FromPort"), g["GroupId"]))
    return out


def test_security_groups_chain_alb_to_services_to_data(stack: Stack) -> None:
    groups = {
        g["GroupName"]: g
        for g in stack.client("ec2").describe_security_groups(Filters=[TAG])["SecurityGroups"]
    }
    names = ("alb", "web", "backend", "engine", "db", "cache")
    assert set(groups) == {f"{STACK}-{n}" for n in names}
    alb, web, backend, engine, db, cache = (groups[f"{STACK}-{n}"] for n in names)
    assert _rules(alb["IpPermissions"]) == {
        ("tcp", 80, "0.0.0.0/0"),
        ("tcp", 443, "0.0.0.0/0"),
        ("tcp", 80, "::/0"),
        ("tcp", 443, "::/0"),
    }
    assert _rules(alb["IpPermissionsEgress"]) == {
        ("tcp", 8000, backend["GroupId"]),
        ("tcp", 8080, web["GroupId"]),
    }
    assert _rules(web["IpPermissions"]) == {("tcp", 8080, alb["GroupId"])}
    assert _rules(backend["IpPermissions"]) == {("tcp", 8000, alb["GroupId"])}
    assert _rules(engine["IpPermissions"]) == {("tcp", 8001, backend["GroupId"])}
    assert _rules(db["IpPermissions"]) == {("tcp", 5432, backend["GroupId"])}
    assert _rules(cache["IpPermissions"]) == {("tcp", 6379, backend["GroupId"])}
    assert db["IpPermissionsEgress"] == [] and cache["IpPermissionsEgress"] == []
    # Each service's tasks run in their own group.
    services = stack.client("ecs").describe_services(cluster=STACK, services=["backend", "engine", "web"])[
        "services"
    ]
    attached = {
        s["serviceName"]: s["networkConfiguration"]["awsvpcConfiguration"]["securityGroups"] for s in services
    }
    assert attached == {n: [groups[f"{STACK}-{n}"]["GroupId"]] for n in ("backend", "engine", "web")}


def test_roles_are_least_privilege(stack: Stack) -> None:
    iam = stack.client("iam")
    execution = f"{STACK}-task-execution"
    attached = [
        p["PolicyName"] for p in iam.list_attached_role_policies(RoleName=execution)["AttachedPolicies"]
    ]
    assert attached == ["AmazonECSTaskExecutionRolePolicy"]
    inline = iam.get_role_policy(RoleName=execution, PolicyName="read-stack-secrets")["PolicyDocument"]
    if isinstance(inline, str):
        inline = json.loads(inline)
    statement = inline["Statement"][0] if isinstance(inline["Statement"], list) else inline["Statement"]
    assert statement["Action"] == "secretsmanager:GetSecretValue"
    # This account, this region, this stack's name prefix: nothing else.
    assert statement["Resource"] == f"arn:aws:secretsmanager:{REGION}:123456789012:secret:{STACK}/*"
    task = f"{STACK}-task"
    assert iam.list_attached_role_policies(RoleName=task)["AttachedPolicies"] == []
    assert iam.list_role_policies(RoleName=task)["PolicyNames"] == []
    for role in (execution, task):
        trust = iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
        if isinstance(trust, str):
            trust = json.loads(trust)
        assert trust["Statement"] == [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"aws:SourceAccount": "123456789012"}},
            }
        ]


def test_registries_logs_and_database_secret(stack: Stack) -> None:
    ecr = stack.client("ecr")
    for service in ("backend", "engine", "web"):
        repo = ecr.describe_repositories(repositoryNames=[f"{STACK}/{service}"])["repositories"][0]
        assert repo["imageTagMutability"] == "IMMUTABLE"
        assert repo["imageScanningConfiguration"] == {"scanOnPush": True}
        rules = json.loads(
            ecr.get_lifecycle_policy(repositoryName=f"{STACK}/{service}")["lifecyclePolicyText"]
        )["rules"]
        assert [r["selection"]["tagStatus"] for r in rules] == ["untagged", "tagged"]
        # Untagged images take no place among the kept tagged ones (the images releases name).
        kept = rules[1]["selection"]
        assert (kept["tagPatternList"], kept["countType"], kept["countNumber"]) == (
            ["*"],
            "imageCountMoreThan",
            20,
        )
    groups = stack.client("logs").describe_log_groups(logGroupNamePrefix=f"/ecs/{STACK}/")["logGroups"]
    assert {(g["logGroupName"], g["retentionInDays"]) for g in groups} == {
        (f"/ecs/{STACK}/{s}", 14) for s in ("backend", "engine", "web")
    }
    master = json.loads(
        stack.client("secretsmanager").get_secret_value(SecretId=f"{STACK}/db-master")["SecretString"]
    )
    assert master["username"] == "tengen" and len(master["password"]) == 32
    assert master["password"] not in stack.runs["first"].output


def test_data_stores_are_private_encrypted_and_in_the_secret(stack: Stack) -> None:
    db = stack.client("rds").describe_db_instances(DBInstanceIdentifier=STACK)["DBInstances"][0]
    assert db["Engine"] == "postgres"
    assert db["StorageEncrypted"] is True
    assert db["PubliclyAccessible"] is False
    assert db["BackupRetentionPeriod"] == 7
    assert db["DeletionProtection"] is False  # staging; production turns it on
    assert db["DBSubnetGroup"]["DBSubnetGroupName"] == f"{STACK}-db"
    assert {s["SubnetIdentifier"] for s in db["DBSubnetGroup"]["Subnets"]} == {
        s["SubnetId"]
        for s in stack.client("ec2").describe_subnets(
            Filters=[TAG, {"Name": "tag:tengen:tier", "Values": ["private"]}]
        )["Subnets"]
    }
    redis = stack.client("elasticache").describe_replication_groups(ReplicationGroupId=STACK)[
        "ReplicationGroups"
    ][0]
    assert redis["TransitEncryptionEnabled"] is True and redis["AtRestEncryptionEnabled"] is True
    # Redis requires AUTH besides TLS; the token is generated into its own secret.
    assert redis["AuthTokenEnabled"] is True
    token = json.loads(
        stack.client("secretsmanager").get_secret_value(SecretId=f"{STACK}/cache-auth")["SecretString"]
    )["token"]
    assert len(token) == 64 and token.isalnum()
    assert token not in stack.runs["first"].output
    app = json.loads(stack.client("secretsmanager").get_secret_value(SecretId=f"{STACK}/app")["SecretString"])
    master = json.loads(
        stack.client("secretsmanager").get_secret_value(SecretId=f"{STACK}/db-master")["SecretString"]
    )
    address = db["Endpoint"]["Address"]
    assert app["DATABASE_URL"] == (
        f"postgresql://tengen:{master['password']}@{address}:{db['Endpoint']['Port']}/tengen?sslmode=require"
    )
    primary = redis["NodeGroups"][0]["PrimaryEndpoint"]
    assert app["REDIS_URL"] == f"rediss://:{token}@{primary['Address']}:{primary['Port']}/0"


def test_task_definitions_and_services(stack: Stack) -> None:
    ecs = stack.client("ecs")
    cluster = ecs.describe_clusters(clusters=[STACK])["clusters"][0]
    assert sorted(cluster["capacityProviders"]) == ["FARGATE", "FARGATE_SPOT"]
    sizes = {"backend": ("512", "1024"), "engine": ("1024", "2048"), "web": ("256", "512")}
    for service, (cpu, memory) in sizes.items():
        td = ecs.describe_task_definition(taskDefinition=f"{STACK}-{service}")["taskDefinition"]
        assert (td["cpu"], td["memory"], td["networkMode"]) == (cpu, memory, "awsvpc")
        assert td["requiresCompatibilities"] == ["FARGATE"]
        assert td["executionRoleArn"].endswith(f"role/{STACK}-task-execution")
        assert td["taskRoleArn"].endswith(f"role/{STACK}-task")
        container = td["containerDefinitions"][0]
        # scale_out_image_tag is empty: each image runs under its build context's digest tag.
        tag = service_images(str(REPO / "files"))[service]["tag"]
        assert container["image"] == f"123456789012.dkr.ecr.{REGION}.amazonaws.com/{STACK}/{service}:{tag}"
        assert container["logConfiguration"]["options"]["awslogs-group"] == f"/ecs/{STACK}/{service}"
        # A read-only root; the image writes only to task storage mounted where it declares a
        # VOLUME (Fargate copies that path's permissions, so uid 10001 can write there).
        assert container["readonlyRootFilesystem"] is True
        tmp = {"sourceVolume": "tmp", "containerPath": "/tmp", "readOnly": False}
        assert container["mountPoints"] == [tmp]
        assert [v["name"] for v in td["volumes"]] == ["tmp"]
        entry = service_images(str(REPO / "files"))[service]
        dockerfile = (REPO / "files" / entry["context"] / entry["dockerfile"]).read_text()
        declared = [json.loads(line[7:]) for line in dockerfile.splitlines() if line.startswith("VOLUME ")]
        assert "/tmp" in [path for paths in declared for path in paths], service
        secrets = {s["name"]: s["valueFrom"] for s in container.get("secrets", [])}
        if service == "backend":
            prefix = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:{STACK}/app"
            assert secrets == {
                "DATABASE_URL": f"{prefix}:DATABASE_URL::",
                "REDIS_URL": f"{prefix}:REDIS_URL::",
            }
        else:
            assert secrets == {}
    services = {
        s["serviceName"]: s for s in ecs.describe_services(cluster=STACK, services=list(sizes))["services"]
    }
    assert {n: s["desiredCount"] for n, s in services.items()} == {"backend": 2, "engine": 1, "web": 1}
    assert services["backend"]["loadBalancers"][0]["containerPort"] == 8000
    assert services["web"]["loadBalancers"][0]["containerPort"] == 8080
    assert services["engine"]["loadBalancers"] == []
    # Not checkable here: moto drops deploymentConfiguration (circuit breaker + rollback) and the
    # capacity provider strategy from the services it stores; the playbook sets both (services.yml).


def _engine_discovery(stack: Stack) -> tuple[dict, dict]:
    """The stack's Cloud Map namespace and its engine service, as Cloud Map describes them."""
    sd = stack.client("servicediscovery")
    namespaces = [n for n in sd.list_namespaces()["Namespaces"] if n["Name"] == f"{STACK}.internal"]
    assert [n["Type"] for n in namespaces] == ["DNS_PRIVATE"]
    # moto ignores the NAMESPACE_ID filter; the full description names the namespace.
    services = [sd.get_service(Id=s["Id"])["Service"] for s in sd.list_services()["Services"]]
    engine = [s for s in services if s["NamespaceId"] == namespaces[0]["Id"]]
    assert [s["Name"] for s in engine] == ["engine"]
    return namespaces[0], engine[0]


def test_engine_is_named_in_a_private_cloud_map_namespace(stack: Stack) -> None:
    namespace, engine = _engine_discovery(stack)
    sd = stack.client("servicediscovery")
    assert engine["DnsConfig"]["DnsRecords"] == [{"Type": "A", "TTL": 10}]
    assert engine["DnsConfig"]["RoutingPolicy"] == "MULTIVALUE"
    assert engine["HealthCheckCustomConfig"] == {"FailureThreshold": 1}
    for arn in (namespace["Arn"], engine["Arn"]):
        tags = {t["Key"]: t["Value"] for t in sd.list_tags_for_resource(ResourceARN=arn)["Tags"]}
        assert tags["tengen:stack"] == STACK
    # The VPC binding: Cloud Map does not return a namespace's VPC, and moto neither associates
    # the namespace's hosted zone with it; moto does refuse a second namespace in the same VPC.
    vpc = stack.client("ec2").describe_vpcs(Filters=[TAG])["Vpcs"][0]["VpcId"]
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        sd.create_private_dns_namespace(Name="probe.internal", Vpc=vpc)
    assert refused.value.response["Error"]["Code"] == "ConflictingDomainExists"
    # ECS registers the engine's tasks with it; backend and web are reached through the ALB.
    services = {
        s["serviceName"]: s
        for s in stack.client("ecs").describe_services(cluster=STACK, services=["backend", "engine", "web"])[
            "services"
        ]
    }
    registries = {name: s.get("serviceRegistries", []) for name, s in services.items()}
    assert registries == {"backend": [], "engine": [{"registryArn": engine["Arn"]}], "web": []}
    # The name the backend is given is the one Cloud Map serves.
    backend = stack.client("ecs").describe_task_definition(taskDefinition=f"{STACK}-backend")[
        "taskDefinition"
    ]
    env = {e["name"]: e["value"] for e in backend["containerDefinitions"][0]["environment"]}
    assert env["TENGEN_ENGINE_URL"] == f"http://{engine['Name']}.{namespace['Name']}:8001"


def test_load_balancer_listeners_rules_and_health_checks(stack: Stack) -> None:
    elb = stack.client("elbv2")
    lb = elb.describe_load_balancers(Names=[STACK])["LoadBalancers"][0]
    assert lb["Scheme"] == "internet-facing"
    tgs = {
        t["TargetGroupName"]: t
        for t in elb.describe_target_groups(LoadBalancerArn=lb["LoadBalancerArn"])["TargetGroups"]
    }
    assert set(tgs) == {f"{STACK}-backend", f"{STACK}-web"}
    assert all(t["TargetType"] == "ip" for t in tgs.values())
    # Each image answers its own path: nginx of the web image serves /healthz, not /readyz.
    assert {n: t["HealthCheckPath"] for n, t in tgs.items()} == {
        f"{STACK}-backend": "/readyz",
        f"{STACK}-web": "/healthz",
    }
    listeners = {
        li["Port"]: li for li in elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    }
    assert set(listeners) == {80, 443}
    redirect = listeners[80]["DefaultActions"][0]
    assert redirect["Type"] == "redirect"
    assert (
        redirect["RedirectConfig"]["Protocol"] == "HTTPS"
        and redirect["RedirectConfig"]["StatusCode"] == "HTTP_301"
    )
    https = listeners[443]
    assert https["Protocol"] == "HTTPS"
    assert https["Certificates"][0]["CertificateArn"] == stack.cert
    assert https["DefaultActions"][0]["TargetGroupArn"] == tgs[f"{STACK}-web"]["TargetGroupArn"]
    rules = [r for r in elb.describe_rules(ListenerArn=https["ListenerArn"])["Rules"] if not r["IsDefault"]]
    routed = {r["Conditions"][0]["Values"][0]: r["Actions"][0]["TargetGroupArn"] for r in rules}
    backend = tgs[f"{STACK}-backend"]["TargetGroupArn"]
    assert routed == {"/api*": backend, "/ws*": backend}


def test_autoscaling_bounds_and_policies(stack: Stack) -> None:
    aas = stack.client("application-autoscaling")
    targets = aas.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"]
    bounds = {t["ResourceId"]: (t["MinCapacity"], t["MaxCapacity"]) for t in targets}
    assert bounds == {
        f"service/{STACK}/backend": (2, 6),
        f"service/{STACK}/engine": (1, 3),
        f"service/{STACK}/web": (1, 3),
    }
    policies = aas.describe_scaling_policies(ServiceNamespace="ecs")["ScalingPolicies"]
    metrics = {
        p["PolicyName"]: (
            p["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"][
                "PredefinedMetricType"
            ],
            p["TargetTrackingScalingPolicyConfiguration"]["TargetValue"],
        )
        for p in policies
    }
    assert metrics == {
        f"{STACK}-backend-cpu": ("ECSServiceAverageCPUUtilization", 60.0),
        f"{STACK}-engine-cpu": ("ECSServiceAverageCPUUtilization", 60.0),
        f"{STACK}-web-cpu": ("ECSServiceAverageCPUUtilization", 60.0),
        f"{STACK}-backend-requests": ("ALBRequestCountPerTarget", 1000.0),
        f"{STACK}-web-requests": ("ALBRequestCountPerTarget", 1000.0),
    }


def test_dns_record_aliases_the_load_balancer(stack: Stack) -> None:
    lb = stack.client("elbv2").describe_load_balancers(Names=[STACK])["LoadBalancers"][0]
    records = stack.client("route53").list_resource_record_sets(HostedZoneId=stack.zone_id)[
        "ResourceRecordSets"
    ]
    record = [r for r in records if r["Name"] == "play.example.org." and r["Type"] == "A"][0]
    assert record["AliasTarget"]["DNSName"].rstrip(".").lower() == lb["DNSName"].lower()


def test_second_run_changes_nothing_but_named_moto_gaps(stack: Stack) -> None:
    again = stack.play("all.yml")
    assert again.rc == 0, again.output[-4000:]
    assert set(again.changed_tasks) <= MOTO_ALWAYS_CHANGED | MOTO_CHANGED_ON_SECOND_RUN, again.changed_tasks
    # What that update wrote is the grace period, nothing else.
    services = stack.client("ecs").describe_services(cluster=STACK, services=["backend", "engine", "web"])[
        "services"
    ]
    grace = {s["serviceName"]: s.get("healthCheckGracePeriodSeconds") for s in services}
    assert grace == {"backend": 60, "engine": None, "web": 60}
    assert {s["serviceName"]: s["desiredCount"] for s in services} == {"backend": 2, "engine": 1, "web": 1}


def test_check_mode_reports_a_change_and_makes_none(stack: Stack) -> None:
    check = stack.play("identity.yml", check=True, extra={"scale_out_log_retention_days": 30})
    assert check.rc == 0, check.output[-4000:]
    assert (
        "aws_identity : logs | Report the log groups that would be created or changed (check mode)"
        in check.changed_tasks
    )
    groups = stack.client("logs").describe_log_groups(logGroupNamePrefix=f"/ecs/{STACK}/")["logGroups"]
    assert {g["retentionInDays"] for g in groups} == {14}


def test_teardown_leaves_nothing_tagged(stack: Stack) -> None:
    down = stack.play("teardown.yml")
    assert down.rc == 0, down.output[-4000:]
    ec2 = stack.client("ec2")
    assert ec2.describe_vpcs(Filters=[TAG])["Vpcs"] == []
    assert ec2.describe_subnets(Filters=[TAG])["Subnets"] == []
    assert ec2.describe_security_groups(Filters=[TAG])["SecurityGroups"] == []
    assert ec2.describe_internet_gateways(Filters=[TAG])["InternetGateways"] == []
    assert ec2.describe_route_tables(Filters=[TAG])["RouteTables"] == []
    assert [
        lb
        for lb in stack.client("elbv2").describe_load_balancers()["LoadBalancers"]
        if lb["LoadBalancerName"] == STACK
    ] == []
    assert stack.client("elbv2").describe_target_groups()["TargetGroups"] == []
    assert stack.client("rds").describe_db_instances()["DBInstances"] == []
    assert stack.client("rds").describe_db_subnet_groups()["DBSubnetGroups"] == []
    ecs = stack.client("ecs")
    assert [c for c in ecs.describe_clusters(clusters=[STACK])["clusters"] if c["status"] == "ACTIVE"] == []
    assert ecs.list_task_definitions(familyPrefix=STACK, status="ACTIVE")["taskDefinitionArns"] == []
    assert (
        stack.client("application-autoscaling").describe_scaling_policies(ServiceNamespace="ecs")[
            "ScalingPolicies"
        ]
        == []
    )
    assert [s["Name"] for s in stack.client("secretsmanager").list_secrets()["SecretList"]] == []
    assert stack.client("ecr").describe_repositories()["repositories"] == []
    assert stack.client("logs").describe_log_groups(logGroupNamePrefix=f"/ecs/{STACK}/")["logGroups"] == []
    roles = [
        r["RoleName"] for r in stack.client("iam").list_roles()["Roles"] if r["RoleName"].startswith(STACK)
    ]
    assert roles == []
    records = stack.client("route53").list_resource_record_sets(HostedZoneId=stack.zone_id)[
        "ResourceRecordSets"
    ]
    assert [r for r in records if r["Type"] == "A"] == []
    sd = stack.client("servicediscovery")
    assert [n for n in sd.list_namespaces()["Namespaces"] if n["Name"] == f"{STACK}.internal"] == []
    assert [s for s in sd.list_services()["Services"] if s["Name"] == "engine"] == []
    # moto keeps a deleted replication group in status "deleting" for ever (real AWS removes it).
    redis = stack.client("elasticache").describe_replication_groups()["ReplicationGroups"]
    assert [g["Status"] for g in redis if g["ReplicationGroupId"] == STACK] in ([], ["deleting"])
    # The tagging API sees nothing of the stack either, beyond what is gone in all but name:
    # secrets in their recovery window (scheduled for deletion, as on AWS) and deleted
    # (INACTIVE) ECS services, which AWS also lists for a while.
    tagged = stack.client("resourcegroupstaggingapi").get_resources(
        TagFilters=[{"Key": "tengen:stack", "Values": [STACK]}]
    )["ResourceTagMappingList"]
    sm = stack.client("secretsmanager")
    leftover = []
    for arn in (r["ResourceARN"] for r in tagged):
        if ":replicationgroup:" in arn:
            continue
        if ":secretsmanager:" in arn and "DeletedDate" in sm.describe_secret(SecretId=arn):
            continue
        if ":ecs:" in arn and ":service/" in arn:
            found = ecs.describe_services(cluster=STACK, services=[arn])["services"]
            if all(s["status"] == "INACTIVE" for s in found):
                continue
        leftover.append(arn)
    assert leftover == []
