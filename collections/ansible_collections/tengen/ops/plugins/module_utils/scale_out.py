"""Checks for the scale-out configuration that need no AWS call.

Shared by the scale_out_validate module and its unit tests. Each check returns messages that
start with the inventory variable at fault, so an operator knows what to edit.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

# Task sizes Fargate accepts for Linux tasks: CPU units -> allowed memory in MiB.
# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-tasks-services.html
FARGATE_SIZES: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4096 + 1, 1024)),
    1024: tuple(range(2048, 8192 + 1, 1024)),
    2048: tuple(range(4096, 16384 + 1, 1024)),
    4096: tuple(range(8192, 30720 + 1, 1024)),
    8192: tuple(range(16384, 61440 + 1, 4096)),
    16384: tuple(range(32768, 122880 + 1, 8192)),
}

STACK_NAME = re.compile(r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$")
# A DNS name of at least two labels; no trailing dot.
DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
ACM_ARN = re.compile(r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]+$")
SERVICES = ("backend", "engine", "web")
ENGINE_CAPACITIES = ("fargate", "gpu")
# Share of a GPU host's memory an engine task may ask for: the rest is the OS's and the ECS agent's.
HOST_MEMORY_SHARE = 0.9


def fargate_size_ok(cpu: Any, memory: Any) -> bool:
    """True when Fargate runs a Linux task of this CPU (units) and memory (MiB)."""
    try:
        return int(memory) in FARGATE_SIZES.get(int(cpu), ())
    except (TypeError, ValueError):
        return False


def _network(value: Any, var: str, errors: list[str]) -> ipaddress.IPv4Network | None:
    try:
        net = ipaddress.IPv4Network(str(value), strict=True)
    except ValueError as exc:
        errors.append(f"{var}: {value!r} is not a valid IPv4 CIDR ({exc})")
        return None
    if not 16 <= net.prefixlen <= 28:
        errors.append(f"{var}: {value} must have a prefix length from /16 to /28, as AWS requires")
        return None
    return net


def check_network(cfg: Mapping[str, Any], errors: list[str]) -> None:
    vpc = _network(cfg.get("scale_out_vpc_cidr"), "scale_out_vpc_cidr", errors)
    azs = cfg.get("scale_out_availability_zones") or []
    if len(set(azs)) < 2:
        errors.append(
            f"scale_out_availability_zones: {list(azs)} names fewer than two distinct zones; "
            "the ALB and RDS subnet groups need two"
        )
    seen: list[tuple[str, ipaddress.IPv4Network]] = []
    for var in ("scale_out_public_subnet_cidrs", "scale_out_private_subnet_cidrs"):
        cidrs = cfg.get(var) or []
        if len(cidrs) != len(azs):
            errors.append(f"{var}: {len(cidrs)} subnets for {len(azs)} availability zones; give one per zone")
        for index, value in enumerate(cidrs):
            name = f"{var}[{index}]"
            net = _network(value, name, errors)
            if net is None:
                continue
            if vpc is not None and not net.subnet_of(vpc):
                errors.append(f"{name}: {net} lies outside scale_out_vpc_cidr {vpc}")
            for other_name, other in seen:
                if net.overlaps(other):
                    errors.append(f"{name}: {net} overlaps {other_name} {other}")
            seen.append((name, net))


def check_names(cfg: Mapping[str, Any], errors: list[str]) -> None:
    stack = str(cfg.get("scale_out_stack") or "")
    if not STACK_NAME.match(stack):
        errors.append(
            f"scale_out_stack: {stack!r} must be 3-32 lowercase letters, digits or dashes, "
            "starting with a letter"
        )
    if cfg.get("scale_out_environment") not in ("staging", "production"):
        errors.append(
            f"scale_out_environment: {cfg.get('scale_out_environment')!r} is not staging or production"
        )
    domain = str(cfg.get("scale_out_domain") or "")
    if not DOMAIN.match(domain):
        errors.append(f"scale_out_domain: {domain!r} is missing or not a DNS name")
    zone = str(cfg.get("scale_out_hosted_zone") or "").rstrip(".")
    if not zone or not (domain == zone or domain.endswith("." + zone)):
        errors.append(
            f"scale_out_hosted_zone: {zone!r} is missing or does not contain scale_out_domain {domain!r}"
        )
    cert = str(cfg.get("scale_out_certificate_arn") or "")
    if not ACM_ARN.match(cert):
        errors.append(f"scale_out_certificate_arn: {cert!r} is missing or not an ACM certificate ARN")
    elif cert.split(":")[3] != cfg.get("scale_out_region"):
        errors.append(
            f"scale_out_certificate_arn: the certificate is in {cert.split(':')[3]}, "
            f"the ALB in scale_out_region {cfg.get('scale_out_region')}"
        )


def check_services(cfg: Mapping[str, Any], errors: list[str]) -> None:
    services = cfg.get("scale_out_services") or {}
    if not isinstance(services, Mapping):
        errors.append("scale_out_services: must be a mapping of service name to its settings")
        return
    missing = [name for name in SERVICES if name not in services]
    if missing:
        errors.append(f"scale_out_services: missing {', '.join(missing)}")
    for name, svc in services.items():
        var = f"scale_out_services.{name}"
        if not isinstance(svc, Mapping):
            errors.append(f"{var}: must be a mapping")
            continue
        if name == "engine" and cfg.get("scale_out_engine_capacity") == "gpu":
            pass  # sized against its GPU host instead (check_gpu)
        elif not fargate_size_ok(svc.get("cpu"), svc.get("memory")):
            allowed = FARGATE_SIZES.get(_int(svc.get("cpu")) or 0)
            hint = (
                f"allowed memory for cpu {svc.get('cpu')}: {', '.join(map(str, allowed))}"
                if allowed
                else (f"cpu must be one of {', '.join(map(str, FARGATE_SIZES))}")
            )
            errors.append(
                f"{var}.cpu/memory: {svc.get('cpu')}/{svc.get('memory')} is not a Fargate size; {hint}"
            )
        counts = {key: _int(svc.get(key)) for key in ("desired_count", "min_count", "max_count")}
        bad = [key for key, value in counts.items() if value is None or value < 0]
        if bad:
            errors.append(f"{var}: {', '.join(bad)} must be whole numbers of zero or more")
            continue
        if counts["min_count"] > counts["max_count"]:
            errors.append(f"{var}.min_count: {counts['min_count']} is above max_count {counts['max_count']}")
        elif not counts["min_count"] <= counts["desired_count"] <= counts["max_count"]:
            errors.append(
                f"{var}.desired_count: {counts['desired_count']} lies outside the autoscaling bounds "
                f"{counts['min_count']}..{counts['max_count']}"
            )
        port = _int(svc.get("port"))
        if port is None or not 1 <= port <= 65535:
            errors.append(f"{var}.port: {svc.get('port')!r} is not a TCP port")


def check_scaling(cfg: Mapping[str, Any], errors: list[str]) -> None:
    spot = _int(cfg.get("scale_out_spot_weight"))
    if spot is None or not 0 <= spot <= 100:
        errors.append(f"scale_out_spot_weight: {cfg.get('scale_out_spot_weight')!r} must be 0 to 100")
    cpu = _int(cfg.get("scale_out_cpu_target"))
    if cpu is None or not 10 <= cpu <= 90:
        errors.append(f"scale_out_cpu_target: {cfg.get('scale_out_cpu_target')!r} must be 10 to 90 percent")
    req = _int(cfg.get("scale_out_requests_per_target"))
    if req is None or req < 1:
        errors.append(
            f"scale_out_requests_per_target: {cfg.get('scale_out_requests_per_target')!r} must be 1 or more"
        )
    nodes = _int(cfg.get("scale_out_cache_nodes"))
    if nodes is None or not 1 <= nodes <= 6:
        errors.append(f"scale_out_cache_nodes: {cfg.get('scale_out_cache_nodes')!r} must be 1 to 6")


def check_gpu(cfg: Mapping[str, Any], gpu: Mapping[str, Any] | None, errors: list[str]) -> None:
    """The engine's capacity, and with gpu: host types a zone offers, on-demand split, task fit.

    `gpu` is the gpu_instances section of data/aws-prices.yml (specs and offered_in).
    """
    capacity = cfg.get("scale_out_engine_capacity", "fargate")
    if capacity not in ENGINE_CAPACITIES:
        errors.append(f"scale_out_engine_capacity: {capacity!r} is not one of {', '.join(ENGINE_CAPACITIES)}")
        return
    if capacity != "gpu":
        return
    gpu = gpu or {}
    specs = gpu.get("specs") or {}
    types = cfg.get("scale_out_gpu_instance_types")
    if not isinstance(types, list) or not types:
        errors.append("scale_out_gpu_instance_types: give one or more GPU instance types, e.g. [g4dn.xlarge]")
        return
    unknown = [t for t in types if t not in specs]
    if unknown:
        errors.append(
            f"scale_out_gpu_instance_types: {', '.join(map(str, unknown))} is not a GPU type of "
            f"data/aws-prices.yml (gpu_instances.specs: {', '.join(specs)})"
        )
    region = cfg.get("scale_out_region")
    zones_of_region = ((gpu.get("offered_in") or {}).get("zones") or {}).get(region)
    if zones_of_region is None:
        errors.append(
            f"scale_out_region: {region!r} has no GPU offerings in data/aws-prices.yml "
            "(gpu_instances.offered_in); add its zones after checking them"
        )
    else:
        zones = list(cfg.get("scale_out_availability_zones") or [])
        for zone in zones:
            if zone not in zones_of_region:
                errors.append(
                    f"scale_out_availability_zones: {zone} is not a zone of {region} in the GPU table"
                )
            elif not set(types) & set(zones_of_region[zone] or []):
                errors.append(
                    f"scale_out_availability_zones: {zone} offers none of scale_out_gpu_instance_types "
                    f"{', '.join(map(str, types))}"
                )
        for kind in types:
            if kind in specs and zones and not any(kind in (zones_of_region.get(z) or []) for z in zones):
                errors.append(
                    f"scale_out_gpu_instance_types: {kind} is offered in none of "
                    f"scale_out_availability_zones {', '.join(zones)}"
                )
    base = _int(cfg.get("scale_out_gpu_on_demand_base", 0))
    if base is None or base < 0:
        errors.append(
            f"scale_out_gpu_on_demand_base: {cfg.get('scale_out_gpu_on_demand_base')!r} "
            "must be 0 or more hosts"
        )
    percent = _int(cfg.get("scale_out_gpu_on_demand_percent", 0))
    if percent is None or not 0 <= percent <= 100:
        errors.append(
            f"scale_out_gpu_on_demand_percent: {cfg.get('scale_out_gpu_on_demand_percent')!r} "
            "must be 0 to 100"
        )
    engine = (cfg.get("scale_out_services") or {}).get("engine")
    known = [specs[t] for t in types if t in specs]
    if isinstance(engine, Mapping) and known:
        cpu, memory = _int(engine.get("cpu")), _int(engine.get("memory"))
        vcpu = min(int(s["vcpu"]) for s in known)
        mib = int(min(int(s["memory_gib"]) for s in known) * 1024 * HOST_MEMORY_SHARE)
        if cpu is None or not 128 <= cpu <= vcpu * 1024:
            errors.append(
                f"scale_out_services.engine.cpu: {engine.get('cpu')!r} does not fit the smallest GPU host "
                f"({vcpu * 1024} CPU units)"
            )
        if memory is None or not 512 <= memory <= mib:
            errors.append(
                f"scale_out_services.engine.memory: {engine.get('memory')!r} does not fit the smallest "
                f"GPU host ({mib} MiB left beside the OS and the ECS agent)"
            )


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def validate(cfg: Mapping[str, Any], gpu_instances: Mapping[str, Any] | None = None) -> list[str]:
    """Every problem found in the configuration; empty when it is fit to deploy.

    `gpu_instances` is the gpu_instances section of data/aws-prices.yml, read with gpu engines.
    """
    errors: list[str] = []
    check_names(cfg, errors)
    check_network(cfg, errors)
    check_services(cfg, errors)
    check_scaling(cfg, errors)
    check_gpu(cfg, gpu_instances, errors)
    return errors
