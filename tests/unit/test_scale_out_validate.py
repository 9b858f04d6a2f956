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
