"""The scale-out configuration checks: each bad input is caught and names its variable."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

from ansible_collections.tengen.ops.plugins.module_utils.scale_out import (  # noqa: E402
    FARGATE_SIZES,
    fargate_size_ok,
    validate,
)

CERT = "arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-0000-4000-8000-000000000001"


@pytest.fixture
def cfg() -> dict:
    """The example inventory, with a certificate set: a valid configuration."""
    data = yaml.safe_load((REPO / "inventories/aws/group_vars/all/scale_out.yml").read_text())
    data["scale_out_certificate_arn"] = CERT
    return data


def test_example_inventory_is_valid_once_a_certificate_is_set(cfg: dict) -> None:
    assert validate(cfg) == []


def test_example_inventory_as_shipped_names_the_missing_certificate(cfg: dict) -> None:
    cfg["scale_out_certificate_arn"] = ""
    errors = validate(cfg)
    assert len(errors) == 1
    assert errors[0].startswith("scale_out_certificate_arn:")


@pytest.mark.parametrize(
    ("change", "variable"),
    [
        ({"scale_out_vpc_cidr": "10.40.0.0/33"}, "scale_out_vpc_cidr:"),
        ({"scale_out_vpc_cidr": "10.40.0.1/16"}, "scale_out_vpc_cidr:"),
        ({"scale_out_vpc_cidr": "10.0.0.0/8"}, "scale_out_vpc_cidr:"),
        ({"scale_out_public_subnet_cidrs": ["10.40.0.0/24", "banana"]}, "scale_out_public_subnet_cidrs[1]:"),
        (
            {"scale_out_private_subnet_cidrs": ["10.40.0.0/24", "10.40.11.0/24"]},
            "scale_out_private_subnet_cidrs[0]:",
        ),
        (
            {"scale_out_private_subnet_cidrs": ["10.40.10.0/24", "10.40.10.128/25"]},
            "scale_out_private_subnet_cidrs[1]:",
        ),
        (
            {"scale_out_private_subnet_cidrs": ["10.40.10.0/24", "10.41.0.0/24"]},
            "scale_out_private_subnet_cidrs[1]:",
        ),
        ({"scale_out_availability_zones": ["eu-west-1a"]}, "scale_out_availability_zones:"),
        ({"scale_out_availability_zones": ["eu-west-1a", "eu-west-1a"]}, "scale_out_availability_zones:"),
        ({"scale_out_domain": ""}, "scale_out_domain:"),
        ({"scale_out_domain": "not a name"}, "scale_out_domain:"),
        ({"scale_out_hosted_zone": "example.com"}, "scale_out_hosted_zone:"),
        (
            {"scale_out_certificate_arn": "arn:aws:acm:us-east-1:123456789012:certificate/abc"},
            "scale_out_certificate_arn:",
        ),
        ({"scale_out_certificate_arn": "arn:aws:iam::123456789012:role/x"}, "scale_out_certificate_arn:"),
        ({"scale_out_stack": "Tengen_Prod"}, "scale_out_stack:"),
        ({"scale_out_environment": "prod"}, "scale_out_environment:"),
        ({"scale_out_spot_weight": 120}, "scale_out_spot_weight:"),
        ({"scale_out_cache_nodes": 0}, "scale_out_cache_nodes:"),
    ],
)
def test_bad_input_names_its_variable(cfg: dict, change: dict, variable: str) -> None:
    cfg.update(change)
    errors = validate(cfg)
    assert errors, f"{change} passed validation"
    assert any(error.startswith(variable) for error in errors), errors


@pytest.mark.parametrize(
    ("service", "settings", "variable"),
    [
        ("backend", {"cpu": 256, "memory": 4096}, "scale_out_services.backend.cpu/memory:"),
        ("engine", {"cpu": 1024, "memory": 1024}, "scale_out_services.engine.cpu/memory:"),
        ("web", {"cpu": 300, "memory": 512}, "scale_out_services.web.cpu/memory:"),
        ("web", {"cpu": 8192, "memory": 18432}, "scale_out_services.web.cpu/memory:"),
        ("backend", {"desired_count": 7}, "scale_out_services.backend.desired_count:"),
        ("backend", {"desired_count": 1}, "scale_out_services.backend.desired_count:"),
        ("engine", {"min_count": 4}, "scale_out_services.engine.min_count:"),
        ("web", {"desired_count": "two"}, "scale_out_services.web:"),
        ("web", {"port": 70000}, "scale_out_services.web.port:"),
    ],
)
def test_bad_service_settings_name_the_service(
    cfg: dict, service: str, settings: dict, variable: str
) -> None:
    cfg = copy.deepcopy(cfg)
    cfg["scale_out_services"][service].update(settings)
    errors = validate(cfg)
    assert any(error.startswith(variable) for error in errors), errors


def test_a_missing_service_is_named(cfg: dict) -> None:
    del cfg["scale_out_services"]["engine"]
    assert any("missing engine" in error for error in validate(cfg))


def test_every_problem_is_reported_at_once(cfg: dict) -> None:
    cfg["scale_out_domain"] = ""
    cfg["scale_out_availability_zones"] = ["eu-west-1a"]
    errors = validate(cfg)
    assert any(e.startswith("scale_out_domain:") for e in errors)
    assert any(e.startswith("scale_out_availability_zones:") for e in errors)


@pytest.mark.parametrize(
    ("cpu", "memory", "ok"),
    [
        (256, 512, True),
        (256, 2048, True),
        (256, 3072, False),
        (512, 4096, True),
        (512, 5120, False),
        (1024, 2048, True),
        (1024, 8192, True),
        (2048, 16384, True),
        (4096, 30720, True),
        (4096, 31744, False),
        (8192, 16384, True),
        (8192, 20480, True),
        (8192, 17408, False),
        (16384, 122880, True),
        (16384, 36864, False),
        ("512", "1024", True),
        (None, 512, False),
    ],
)
def test_fargate_table(cpu: object, memory: object, ok: bool) -> None:
    assert fargate_size_ok(cpu, memory) is ok


def test_fargate_table_has_every_cpu_size() -> None:
    assert sorted(FARGATE_SIZES) == [256, 512, 1024, 2048, 4096, 8192, 16384]


GPU_TABLE = yaml.safe_load((REPO / "data/aws-prices.yml").read_text())["gpu_instances"]


def gpu_cfg(cfg: dict, **changes) -> dict:
    out = {**cfg, "scale_out_engine_capacity": "gpu", **changes}
    return out


def test_the_default_gpu_engine_is_valid(cfg: dict) -> None:
    assert validate(gpu_cfg(cfg), GPU_TABLE) == []
    # With gpu the engine is sized against its host, not Fargate's pairs (3 vCPU exists on EC2).
    bigger = copy.deepcopy(cfg)
    bigger["scale_out_services"]["engine"].update(cpu=3072, memory=12288)
    assert validate(gpu_cfg(bigger), GPU_TABLE) == []
    assert validate(bigger, GPU_TABLE)[0].startswith("scale_out_services.engine.cpu/memory:")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"scale_out_engine_capacity": "tpu"}, "scale_out_engine_capacity: 'tpu' is not one of fargate, gpu"),
        (
            {"scale_out_gpu_instance_types": ["t3.large"]},
            "scale_out_gpu_instance_types: t3.large is not a GPU type of data/aws-prices.yml",
        ),
        ({"scale_out_gpu_instance_types": []}, "scale_out_gpu_instance_types: give one or more"),
        # eu-west-1 offers no g6 in the table: the type is named, and every zone too.
        (
            {"scale_out_gpu_instance_types": ["g6.xlarge"]},
            "scale_out_gpu_instance_types: g6.xlarge is offered in none of scale_out_availability_zones",
        ),
        (
            {"scale_out_region": "us-east-1", "scale_out_availability_zones": ["us-east-1a", "us-east-1e"]},
            "scale_out_availability_zones: us-east-1e offers none of "
            "scale_out_gpu_instance_types g4dn.xlarge",
        ),
        (
            {"scale_out_availability_zones": ["eu-west-1a", "eu-west-1z"]},
            "scale_out_availability_zones: eu-west-1z is not a zone of eu-west-1 in the GPU table",
        ),
        (
            {
                "scale_out_region": "ap-south-2",
                "scale_out_availability_zones": ["ap-south-2a", "ap-south-2b"],
            },
            "scale_out_region: 'ap-south-2' has no GPU offerings in data/aws-prices.yml",
        ),
        ({"scale_out_gpu_on_demand_percent": 101}, "scale_out_gpu_on_demand_percent: 101 must be 0 to 100"),
        ({"scale_out_gpu_on_demand_base": -1}, "scale_out_gpu_on_demand_base: -1 must be 0 or more hosts"),
    ],
)
def test_bad_gpu_input_names_its_variable(cfg: dict, change: dict, message: str) -> None:
    errors = validate(gpu_cfg(cfg, **change), GPU_TABLE)
    assert any(e.startswith(message) for e in errors), errors


def test_a_zone_missing_one_of_several_types_is_fine(cfg: dict) -> None:
    # eu-west-3a has no g6.xlarge but has g4dn.xlarge; the group launches what each zone offers.
    ok = gpu_cfg(
        cfg,
        scale_out_region="eu-west-3",
        scale_out_availability_zones=["eu-west-3a", "eu-west-3b"],
        scale_out_gpu_instance_types=["g6.xlarge", "g4dn.xlarge"],
    )
    ok["scale_out_certificate_arn"] = CERT.replace("eu-west-1", "eu-west-3")
    assert validate(ok, GPU_TABLE) == []


def test_an_engine_larger_than_its_gpu_host_is_named(cfg: dict) -> None:
    big = copy.deepcopy(cfg)
    big["scale_out_services"]["engine"].update(cpu=8192, memory=16384)
    errors = validate(gpu_cfg(big), GPU_TABLE)
    assert errors == [
        "scale_out_services.engine.cpu: 8192 does not fit the smallest GPU host (4096 CPU units)",
        "scale_out_services.engine.memory: 16384 does not fit the smallest GPU host "
        "(14745 MiB left beside the OS and the ECS agent)",
    ]
    # The smallest of several types bounds it.
    two = gpu_cfg(big, scale_out_gpu_instance_types=["g4dn.2xlarge"])
    big["scale_out_services"]["engine"].update(cpu=8192, memory=16384)
    assert validate(two, GPU_TABLE) == []


def test_fargate_engine_ignores_the_gpu_settings(cfg: dict) -> None:
    assert validate({**cfg, "scale_out_gpu_instance_types": ["t3.large"]}, GPU_TABLE) == []
