"""The rehearsal's translation of task definitions, on moto's recorded answers after all.yml.

tests/unit/data/rehearsal/moto-snapshot.json is what `read_snapshot` read from moto_server
after playbooks/scale-out/all.yml (tests/aws/record_rehearsal_snapshot.py records it again).
`hardened` adds, on top of that record, the settings the track is taking on: per-service
health-check paths, a read-only root filesystem with task volumes, a health check, a user,
ulimits, an init process, one security group per service and a Redis AUTH token.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.tengen.ops.plugins.module_utils.ecs_rehearsal import (
    RehearsalError,
    datastore,
    image_reference,
    map_image,
    rehearsed_url,
    secret_id,
    summary,
    translate,
)

SNAPSHOT = Path(__file__).resolve().parents[2] / "data" / "rehearsal" / "moto-snapshot.json"
ECR = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
REGISTRY = {ECR: "127.0.0.1:5000"}
APP_SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:tengen-staging/app"
TOKEN = "t0ken/with+odd=chars"


def recorded() -> dict[str, Any]:
    return json.loads(SNAPSHOT.read_text())


def task(snapshot: dict[str, Any], service: str) -> dict[str, Any]:
    svc = next(s for s in snapshot["services"] if s["serviceName"] == service)
    return snapshot["task_definitions"][svc["taskDefinition"]]


def hardened() -> dict[str, Any]:
    snap = recorded()
    backend = task(snap, "backend")
    backend["volumes"] = [{"name": "tmp", "host": {}}, {"name": "data", "host": {}}]
    container = backend["containerDefinitions"][0]
    container.update(
        {
            "readonlyRootFilesystem": True,
            "mountPoints": [
                {"sourceVolume": "tmp", "containerPath": "/tmp", "readOnly": False},
                {"sourceVolume": "data", "containerPath": "/var/lib/tengen"},
            ],
            "user": "10001:10001",
            "ulimits": [{"name": "nofile", "softLimit": 65536, "hardLimit": 65536}],
            "healthCheck": {
                "command": ["CMD-SHELL", "python3 -c 'print(1)'"],
                "interval": 10,
                "timeout": 3,
                "retries": 4,
                "startPeriod": 20,
            },
            "linuxParameters": {"initProcessEnabled": True},
            "command": ["python3", "-m", "tengen_app", "serve"],
            "entryPoint": ["/usr/bin/env"],
            "workingDirectory": "/opt/tengen",
            "dockerLabels": {"team": "go"},
        }
    )
    secret = json.loads(snap["secrets"][APP_SECRET])
    host = secret["REDIS_URL"].split("//", 1)[1]
    secret["REDIS_URL"] = (
        f"rediss://:{TOKEN.replace('/', '%2F').replace('+', '%2B').replace('=', '%3D')}@{host}"
    )
    snap["secrets"][APP_SECRET] = json.dumps(secret)
    for i, svc in enumerate(snap["services"]):
        svc["networkConfiguration"]["awsvpcConfiguration"]["securityGroups"] = [f"sg-{svc['serviceName']}{i}"]
        svc["deploymentConfiguration"] = {"minimumHealthyPercent": 50, "maximumPercent": 150}
    return snap


def plan_of(snapshot: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return translate(snapshot, registry_map=REGISTRY, network="rehearsal", **kwargs)


def service(plan: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in plan["services"] if s["name"] == name)


def test_every_service_runs_its_desired_count_from_the_registered_task_definition() -> None:
    snap = recorded()
    plan = plan_of(snap)
    counts = {s["name"]: (s["desired_count"], len(s["replicas"])) for s in plan["services"]}
    assert counts == {"backend": (2, 2), "engine": (1, 1), "web": (1, 1)}
    backend = service(plan, "backend")
    assert [r["name"] for r in backend["replicas"]] == [
        "tengen-staging-backend-1",
        "tengen-staging-backend-2",
    ]
    assert backend["task_definition"] == "tengen-staging-backend:1"
    spec = backend["replicas"][0]
    assert spec["image"] == "127.0.0.1:5000/tengen-staging/backend:0.1.0"
    assert spec["ports"] == [8000]
    assert spec["env"]["TENGEN_ENGINE_URL"] == "http://engine.tengen-staging.internal:8001"
    assert spec["env"]["TENGEN_PORT"] == "8000"
    assert spec["stop_timeout"] == 30
    assert spec["essential"] and spec["restart_policy"] == "always"
    # No healthCheck in the task definition: ECS ignores the image's HEALTHCHECK, and so does the rehearsal.
    assert spec["healthcheck"] == {"test": ["NONE"]}
    # The Fargate task size becomes the container's limits.
    assert (spec["cpus"], spec["memory"]) == (0.5, "1024M")
    assert service(plan, "engine")["replicas"][0]["cpus"] == 1.0
    # awslogs goes to Docker's local driver; the log group is kept as a label.
    assert spec["log_driver"] == "local"
    assert spec["labels"]["tengen.rehearsal.log_group"] == "/ecs/tengen-staging/backend"
    assert backend["targets"] == [
        {"target_group_arn": snap["services"][0]["loadBalancers"][0]["targetGroupArn"], "port": 8000}
    ]


def test_secrets_are_resolved_from_secrets_manager_and_name_the_data_stores() -> None:
    snap = recorded()
    secret = json.loads(snap["secrets"][APP_SECRET])
    plan = plan_of(snap)
    spec = service(plan, "backend")["replicas"][0]
    assert spec["secret_env"] == ["DATABASE_URL", "REDIS_URL"]
    assert spec["env"]["DATABASE_URL"] == secret["DATABASE_URL"]
    # The rehearsal's Redis speaks no TLS: the one rewrite, and it is reported.
    assert secret["REDIS_URL"].startswith("rediss://")
    assert spec["env"]["REDIS_URL"] == "redis://" + secret["REDIS_URL"][len("rediss://") :]
    assert any(line.startswith("REDIS_URL: TLS to Redis") for line in plan["not_rehearsed"])
    stores = {s["kind"]: s for s in plan["datastores"]}
    assert stores["postgres"]["host"] == "tengen-staging.aaaaaaaaaa.eu-west-1.rds.amazonaws.com"
    assert (stores["postgres"]["user"], stores["postgres"]["database"], stores["postgres"]["port"]) == (
        "tengen",
        "tengen",
        5432,
    )
    assert stores["postgres"]["password"] and stores["postgres"]["password"] in secret["DATABASE_URL"]
    assert stores["postgres"]["tls"] is True  # sslmode=require
    assert stores["redis"]["host"].startswith("master.tengen-staging.")
    assert stores["redis"]["password"] == ""
    # The engine and the web client get no secret.
    assert service(plan, "engine")["replicas"][0]["secret_env"] == []


def test_cloud_map_names_become_aliases_of_the_registered_service_only() -> None:
    plan = plan_of(recorded())
    assert service(plan, "engine")["aliases"] == ["engine.tengen-staging.internal"]
    assert service(plan, "engine")["replicas"][0]["networks"] == [
        {"name": "rehearsal", "aliases": ["engine.tengen-staging.internal"]}
    ]
    assert service(plan, "backend")["aliases"] == []


def test_iam_and_security_groups_are_reported_as_not_rehearsed() -> None:
    plan = plan_of(recorded())
    text = "\n".join(plan["not_rehearsed"])
    assert "tengen-staging-backend:1 taskRoleArn: IAM is not rehearsed" in text
    assert "tengen-staging-web:1 executionRoleArn" in text
    assert "service engine security groups sg-" in text


def test_the_hardened_task_definition_maps_every_field() -> None:
    plan = plan_of(hardened())
    spec = service(plan, "backend")["replicas"][1]
    assert spec["read_only"] is True
    assert spec["mounts"] == [
        {"type": "volume", "source": "tengen-staging-backend-2-tmp", "target": "/tmp", "read_only": False},
        {
            "type": "volume",
            "source": "tengen-staging-backend-2-data",
            "target": "/var/lib/tengen",
            "read_only": False,
        },
    ]
    assert spec["user"] == "10001:10001"
    assert spec["ulimits"] == ["nofile:65536:65536"]
    assert spec["healthcheck"] == {
        "test": ["CMD-SHELL", "python3 -c 'print(1)'"],
        "interval": "10s",
        "timeout": "3s",
        "retries": 4,
        "start_period": "20s",
    }
    assert spec["init"] is True
    assert spec["command"] == ["python3", "-m", "tengen_app", "serve"]
    assert spec["entrypoint"] == ["/usr/bin/env"]
    assert spec["working_dir"] == "/opt/tengen"
    assert spec["labels"]["team"] == "go"
    backend = service(plan, "backend")
    assert (backend["minimum_healthy_percent"], backend["maximum_percent"]) == (50, 150)
    assert "service backend security groups sg-backend0" in "\n".join(plan["not_rehearsed"])


def test_a_redis_auth_token_in_rediss_url_reaches_the_rehearsal_redis() -> None:
    plan = plan_of(hardened())
    redis = next(s for s in plan["datastores"] if s["kind"] == "redis")
    assert redis["password"] == TOKEN
    assert redis["tls"] is True
    url = service(plan, "backend")["replicas"][0]["env"]["REDIS_URL"]
    assert url.startswith("redis://:t0ken%2Fwith%2Bodd%3Dchars@master.tengen-staging.")


def test_summary_names_secrets_but_never_their_values() -> None:
    snap = hardened()
    plan = plan_of(snap)
    text = "\n".join(summary(plan))
    postgres = next(s for s in plan["datastores"] if s["kind"] == "postgres")
    assert "secrets DATABASE_URL, REDIS_URL" in text
    assert postgres["password"] not in text and TOKEN not in text
    assert "engine.tengen-staging.internal" in text


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (
            lambda c, t: c.update({"linuxParameters": {"capabilities": {"add": ["SYS_PTRACE"]}}}),
            "capabilities",
        ),
        (lambda c, t: c.update({"dependsOn": [{"containerName": "x", "condition": "START"}]}), "dependsOn"),
        (
            lambda c, t: c.update({"environmentFiles": [{"value": "arn:s3", "type": "s3"}]}),
            "environmentFiles",
        ),
        (lambda c, t: c.update({"logConfiguration": {"logDriver": "splunk"}}), "logDriver"),
        (lambda c, t: c["portMappings"][0].update({"protocol": "udp"}), "portMappings[0].protocol"),
        (
            lambda c, t: c.update({"mountPoints": [{"sourceVolume": "nope", "containerPath": "/x"}]}),
            "sourceVolume",
        ),
        (
            lambda c, t: t.update(
                {"volumes": [{"name": "efs", "efsVolumeConfiguration": {"fileSystemId": "fs-1"}}]}
            ),
            "efsVolumeConfiguration",
        ),  # fmt: skip
        (lambda c, t: t.update({"pidMode": "task"}), "pidMode"),
        (lambda c, t: t.update({"networkMode": "bridge"}), "networkMode"),
        (lambda c, t: c.update({"healthCheck": {"command": ["NONE"]}}), "healthCheck.command"),
        (
            lambda c, t: c.update({"ulimits": [{"name": "bogus", "softLimit": 1, "hardLimit": 1}]}),
            "ulimits[0].name",
        ),
    ],
)
def test_a_field_the_rehearsal_cannot_represent_stops_it_by_name(change: Any, named: str) -> None:
    snap = recorded()
    definition = task(snap, "backend")
    change(definition["containerDefinitions"][0], definition)
    with pytest.raises(RehearsalError, match="tengen-staging-backend:1") as raised:
        plan_of(snap)
    assert named in str(raised.value)


def test_an_architecture_other_than_the_task_definitions_is_refused() -> None:
    with pytest.raises(RehearsalError, match=r"cpuArchitecture: X86_64, but the Docker host is ARM64"):
        plan_of(recorded(), architecture="aarch64")


def test_an_image_from_a_registry_not_mapped_is_refused_by_name() -> None:
    snap = recorded()
    task(snap, "web")["containerDefinitions"][0]["image"] = "quay.io/someone/web:1"
    with pytest.raises(RehearsalError, match=r"registry quay.io is not in aws_rehearsal_registry_map"):
        plan_of(snap)
    with pytest.raises(RehearsalError, match="names no registry host"):
        map_image("nginx:latest", REGISTRY)


def test_a_secret_key_missing_from_the_secret_is_refused() -> None:
    snap = recorded()
    secret = json.loads(snap["secrets"][APP_SECRET])
    del secret["REDIS_URL"]
    snap["secrets"][APP_SECRET] = json.dumps(secret)
    with pytest.raises(
        RehearsalError, match=r"secrets\[1\] \(REDIS_URL\): secret .*tengen-staging/app has no key"
    ):
        plan_of(snap)


def test_service_level_placement_is_refused() -> None:
    snap = recorded()
    snap["services"][1]["placementStrategy"] = [
        {"type": "spread", "field": "attribute:ecs.availability-zone"}
    ]
    with pytest.raises(RehearsalError, match="service engine: placementStrategy cannot be rehearsed"):
        plan_of(snap)


def test_two_credentials_for_one_database_are_refused() -> None:
    snap = recorded()
    web = task(snap, "web")["containerDefinitions"][0]
    web["secrets"] = [{"name": "DATABASE_URL", "valueFrom": f"{APP_SECRET}:OTHER::"}]
    secret = json.loads(snap["secrets"][APP_SECRET])
    secret["OTHER"] = secret["DATABASE_URL"].replace("tengen:", "other:")
    snap["secrets"][APP_SECRET] = json.dumps(secret)
    with pytest.raises(RehearsalError, match="named with two different credentials"):
        plan_of(snap)


def test_image_references() -> None:
    assert image_reference("127.0.0.1:5000/tengen-staging/backend:0.1.0") == {
        "image": "127.0.0.1:5000/tengen-staging/backend:0.1.0",
        "registry": "127.0.0.1:5000",
        "repository": "tengen-staging/backend",
        "reference": "0.1.0",
    }
    assert image_reference("r:1/a/b@sha256:ab")["reference"] == "sha256:ab"
    assert image_reference("r:1/a/b")["reference"] == "latest"


def test_secret_ids_and_urls() -> None:
    assert secret_id(f"{APP_SECRET}:DATABASE_URL::") == (APP_SECRET, "DATABASE_URL")
    assert secret_id(APP_SECRET) == (APP_SECRET, "")
    with pytest.raises(RehearsalError, match="version stage"):
        secret_id(f"{APP_SECRET}:KEY:AWSPREVIOUS:")
    with pytest.raises(RehearsalError, match="only Secrets Manager"):
        secret_id("arn:aws:ssm:eu-west-1:123456789012:parameter/x")
    assert rehearsed_url("rediss://:a@h:6379/0") == "redis://:a@h:6379/0"
    assert rehearsed_url("postgresql://u:p@h/db") == "postgresql://u:p@h/db"
    assert datastore("X", "https://example.org", "w") is None
    with pytest.raises(RehearsalError, match="no user and password"):
        datastore("DATABASE_URL", "postgresql://h:5432/db", "w")


def test_the_recorded_answers_are_left_unchanged_by_translation() -> None:
    snap = recorded()
    before = copy.deepcopy(snap)
    plan_of(snap)
    assert snap == before
