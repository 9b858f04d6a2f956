"""Bad scale-out input stops the playbooks before any AWS call, naming the variable.

The endpoint is a loopback port nothing listens on: any AWS call would fail with a connection
error in some later task, not with the validation message in the first one.
"""

from __future__ import annotations

import pytest

from tests.conftest import free_port
from tests.scale_out_run import run_playbook

CERT = "arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-0000-4000-8000-000000000001"
VALIDATE = "Check the scale-out configuration before any AWS call"


@pytest.mark.parametrize(
    ("playbook", "extra", "variable"),
    [
        (
            "network.yml",
            {"scale_out_private_subnet_cidrs": ["10.40.0.0/24", "10.40.11.0/24"]},
            "scale_out_private_subnet_cidrs[0]",
        ),
        ("services.yml", {"scale_out_availability_zones": ["eu-west-1a"]}, "scale_out_availability_zones"),
        ("data.yml", {"scale_out_certificate_arn": ""}, "scale_out_certificate_arn"),
        ("network.yml", {"scale_out_engine_capacity": "tpu"}, "scale_out_engine_capacity"),
        (
            "services.yml",
            {"scale_out_engine_capacity": "gpu", "scale_out_gpu_instance_types": ["g6.xlarge"]},
            "scale_out_gpu_instance_types",
        ),
    ],
)
def test_bad_input_fails_in_validation_before_any_aws_call(playbook: str, extra: dict, variable: str) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    extra = {"scale_out_certificate_arn": CERT, **extra}
    run = run_playbook(playbook, dead, extra, moto=False)
    assert run.rc != 0
    assert run.failed_tasks == [VALIDATE], run.output[-3000:]
    assert variable + ":" in run.output
    assert "Could not connect" not in run.output and "EndpointConnectionError" not in run.output


def test_bad_fargate_size_and_count_are_named() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    services = {
        "backend": {
            "cpu": 256,
            "memory": 4096,
            "port": 8000,
            "desired_count": 2,
            "min_count": 2,
            "max_count": 6,
        },
        "engine": {
            "cpu": 1024,
            "memory": 2048,
            "port": 8001,
            "desired_count": 5,
            "min_count": 1,
            "max_count": 3,
        },
        "web": {"cpu": 256, "memory": 512, "port": 8080, "desired_count": 1, "min_count": 1, "max_count": 3},
    }
    run = run_playbook(
        "services.yml", dead, {"scale_out_certificate_arn": CERT, "scale_out_services": services}, moto=False
    )
    assert run.failed_tasks == [VALIDATE], run.output[-3000:]
    assert "scale_out_services.backend.cpu/memory:" in run.output
    assert "scale_out_services.engine.desired_count:" in run.output


def test_production_teardown_is_refused_without_confirmation() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    run = run_playbook("teardown.yml", dead, {"scale_out_environment": "production"}, moto=False)
    assert run.rc != 0
    assert run.failed_tasks == [
        "aws_teardown : Refuse to tear down production without the stack name as confirmation"
    ]
    assert "confirm_teardown=tengen-staging" in run.output


def test_a_lifecycle_that_would_expire_the_previous_release_is_refused_before_any_aws_call() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    extra = {"scale_out_certificate_arn": CERT, "aws_identity_ecr_keep_images": 1}
    run = run_playbook("identity.yml", dead, extra, moto=False)
    assert run.rc != 0
    assert run.failed_tasks == ["aws_identity : Refuse a lifecycle that would expire the previous release"], (
        run.output[-3000:]
    )
    assert "aws_identity_ecr_keep_images: 1 keeps fewer" in run.output
