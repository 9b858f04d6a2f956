"""The stand-in ALB: an HAProxy configuration from moto's recorded listeners, rules and target groups."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.tengen.ops.plugins.module_utils.alb_proxy import (
    matcher_codes,
    pattern_regex,
    proxy_config,
)
from ansible_collections.tengen.ops.plugins.module_utils.ecs_rehearsal import RehearsalError

from tests.unit.plugins.module_utils.test_ecs_rehearsal import plan_of, recorded

PORTS = {80: 18080, 443: 18443}


def config_of(snapshot: dict[str, Any], ports: dict[int, int] = PORTS) -> dict[str, Any]:
    return proxy_config(snapshot, plan_of(snapshot), ports)


def block(config: str, header: str) -> list[str]:
    """The lines of one section (frontend/backend) of the configuration."""
    lines = config.splitlines()
    start = lines.index(header)
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith(" ")), len(lines))
    return [line.strip() for line in lines[start + 1 : end] if not line.strip().startswith("#")]


def target_group(snapshot: dict[str, Any], name: str) -> dict[str, Any]:
    return next(tg for tg in snapshot["target_groups"] if tg["TargetGroupName"] == name)


def set_attribute(snapshot: dict[str, Any], name: str, key: str, value: str) -> None:
    attrs = snapshot["target_group_attributes"][target_group(snapshot, name)["TargetGroupArn"]]
    attrs[:] = [a for a in attrs if a["Key"] != key] + [{"Key": key, "Value": value}]


def test_the_https_listener_routes_api_and_ws_to_the_backend_and_the_rest_to_web() -> None:
    proxy = config_of(recorded())
    assert block(proxy["config"], "frontend listener_443") == [
        "bind 0.0.0.0:18443",
        "option forwardfor",
        "http-request set-header X-Forwarded-Proto https",
        "http-request set-header X-Forwarded-Port 443",
        "acl l443_rule_10_c0 path_reg ^/api.*$",
        "use_backend tengen-staging-backend if l443_rule_10_c0",
        "acl l443_rule_20_c0 path_reg ^/ws.*$",
        "use_backend tengen-staging-backend if l443_rule_20_c0",
        "default_backend tengen-staging-web",
    ]
    assert [(lst["port"], lst["local_port"], lst["protocol"]) for lst in proxy["listeners"]] == [
        (80, 18080, "HTTP"),
        (443, 18443, "HTTPS"),
    ]
    assert any("served as plain HTTP on port 18443" in line for line in proxy["not_rehearsed"])


def test_the_http_listener_redirects_to_https_as_the_alb_does() -> None:
    lines = block(config_of(recorded())["config"], "frontend listener_80")
    assert lines[-1] == (
        "http-request redirect location https://%[req.hdr(host),field(1,:)]%[capture.req.uri] code 301"
    )


def test_each_target_group_becomes_a_health_checked_backend_of_its_replicas() -> None:
    proxy = config_of(recorded())
    assert block(proxy["config"], "backend tengen-staging-backend") == [
        "balance roundrobin",
        "timeout check 5s",
        "retries 3",
        "option redispatch 1",
        "option httpchk",
        "http-check send meth GET uri /readyz",
        "http-check expect status 200",
        "default-server resolvers docker init-addr last,libc,none check inter 15s rise 2 fall 3",
        "server tengen-staging-backend-1 tengen-staging-backend-1:8000",
        "server tengen-staging-backend-2 tengen-staging-backend-2:8000",
    ]
    web = next(g for g in proxy["target_groups"] if g["name"] == "tengen-staging-web")
    assert web["servers"] == ["tengen-staging-web-1"]
    assert (web["interval"], web["healthy_threshold"], web["unhealthy_threshold"], web["timeout"]) == (
        15,
        2,
        3,
        5,
    )
    assert web["deregistration_delay"] == 30
    # The engine is behind no target group: no backend holds it.
    assert "engine" not in proxy["config"].split("backend tengen-staging-backend")[1]


def test_moto_gives_no_idle_timeout_so_the_aws_default_is_used_and_said() -> None:
    proxy = config_of(recorded())
    assert proxy["idle_timeout"] == 60
    for line in ("timeout client 60s", "timeout server 60s", "timeout tunnel 60s"):
        assert f"    {line}" in proxy["config"]
    assert any("the AWS default of 60 s is used" in line for line in proxy["not_rehearsed"])


def test_per_service_health_paths_matchers_and_attributes_follow_the_target_groups() -> None:
    snap = recorded()
    target_group(snap, "tengen-staging-web")["HealthCheckPath"] = "/healthz"
    backend = target_group(snap, "tengen-staging-backend")
    backend.update(
        {"Matcher": {"HttpCode": "200-202,204"}, "HealthCheckIntervalSeconds": 5, "HealthCheckPort": "9000"}
    )
    set_attribute(
        snap, "tengen-staging-backend", "load_balancing.algorithm.type", "least_outstanding_requests"
    )
    set_attribute(snap, "tengen-staging-backend", "slow_start.duration_seconds", "30")
    snap["load_balancer_attributes"].append({"Key": "idle_timeout.timeout_seconds", "Value": "3600"})
    proxy = config_of(snap)
    assert "http-check send meth GET uri /healthz" in block(proxy["config"], "backend tengen-staging-web")
    lines = block(proxy["config"], "backend tengen-staging-backend")
    assert "balance leastconn" in lines
    assert "http-check expect rstatus ^(200|201|202|204)$" in lines
    server = "default-server resolvers docker init-addr last,libc,none check inter 5s rise 2 fall 3"
    assert f"{server} port 9000 slowstart 30s" in lines
    assert "    timeout tunnel 3600s" in proxy["config"]
    assert not any("idle timeout" in line for line in proxy["not_rehearsed"])


def test_a_disabled_health_check_sends_traffic_to_every_target() -> None:
    snap = recorded()
    target_group(snap, "tengen-staging-web")["HealthCheckEnabled"] = False
    lines = block(config_of(snap)["config"], "backend tengen-staging-web")
    assert "option httpchk" not in lines
    assert "default-server resolvers docker init-addr last,libc,none" in lines


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (
            lambda s: set_attribute(s, "tengen-staging-web", "stickiness.enabled", "true"),
            "stickiness.enabled",
        ),
        (
            lambda s: set_attribute(s, "tengen-staging-web", "proxy_protocol_v2.enabled", "false"),
            "proxy_protocol_v2",
        ),
        (
            lambda s: target_group(s, "tengen-staging-web").update({"HealthCheckProtocol": "HTTPS"}),
            "HealthCheckProtocol",
        ),
        (lambda s: target_group(s, "tengen-staging-web").update({"Matcher": {"GrpcCode": "0"}}), "GrpcCode"),
        (
            lambda s: s["load_balancer_attributes"].append({"Key": "routing.http.xyz", "Value": "1"}),
            "routing.http.xyz",
        ),
        (
            lambda s: first_rule(s)["Conditions"].append({"Field": "http-header", "Values": ["x"]}),
            "http-header",
        ),
        (lambda s: first_rule(s)["Actions"].insert(0, {"Type": "authenticate-oidc"}), "authenticate-oidc"),
    ],
)
def test_an_alb_setting_haproxy_cannot_mirror_stops_the_run_by_name(change: Any, named: str) -> None:
    snap = recorded()
    change(snap)
    with pytest.raises(RehearsalError, match=named):
        config_of(snap)


def first_rule(snapshot: dict[str, Any]) -> dict[str, Any]:
    rules = [r for rules in snapshot["rules"].values() for r in rules if r["Priority"] == "10"]
    return rules[0]


def test_a_listener_without_a_local_port_is_refused() -> None:
    with pytest.raises(
        RehearsalError, match="listener HTTPS:443: port 443 is not in aws_rehearsal_listener_ports"
    ):
        config_of(recorded(), {80: 18080})


def test_patterns_and_matchers() -> None:
    assert pattern_regex("/api*", "w") == r"^/api.*$"
    assert pattern_regex("/v?/x.y", "w") == r"^/v./x\.y$"
    assert matcher_codes({"HttpCode": "200,302"}, "w") == [200, 302]
    with pytest.raises(RehearsalError, match="outside 200-499"):
        matcher_codes({"HttpCode": "500"}, "w")


def test_haproxy_accepts_the_generated_configuration(tmp_path: Path) -> None:
    exe = shutil.which("haproxy") or "/usr/sbin/haproxy"
    assert Path(exe).exists(), "haproxy is missing: apt-get install haproxy (scripts/test-packages.txt)"
    snap = recorded()
    snap["load_balancer_attributes"].append({"Key": "idle_timeout.timeout_seconds", "Value": "3600"})
    config = config_of(snap)["config"].replace("/run/haproxy/admin.sock", str(tmp_path / "admin.sock"))
    (tmp_path / "haproxy.cfg").write_text(config)
    check = subprocess.run([exe, "-c", "-f", str(tmp_path / "haproxy.cfg")], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
