"""The ALB of a scale-out stack as an HAProxy configuration (the rehearsal's stand-in load balancer).

`proxy_config` reads the ALB's listeners, listener rules, target groups and attributes from a
snapshot (ecs_rehearsal.read_snapshot) and the replicas of the rehearsal plan, and writes an
HAProxy configuration that routes as the rules say and sends traffic only to replicas passing
their target group's health check (path, matcher, interval, timeout, thresholds), with the
ALB's idle timeout on both sides and for WebSocket tunnels. A setting without an HAProxy
equivalent raises RehearsalError naming it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ansible_collections.tengen.ops.plugins.module_utils.ecs_rehearsal import RehearsalError

# ALB defaults when the endpoint leaves an attribute out (moto omits the idle timeout).
DEFAULT_IDLE_TIMEOUT = 60
# The ALB gives up connecting to a target after 10 s.
CONNECT_TIMEOUT = 10
# Attributes that mean nothing on one host (zones, logs, WAF, deletion); their values are not read.
LB_ATTRIBUTES_IGNORED = {
    "access_logs.s3.enabled", "access_logs.s3.bucket", "access_logs.s3.prefix", "connection_logs.s3.enabled",
    "connection_logs.s3.bucket", "connection_logs.s3.prefix", "health_check_logs.s3.enabled",
    "health_check_logs.s3.bucket", "health_check_logs.s3.prefix", "deletion_protection.enabled",
    "load_balancing.cross_zone.enabled", "waf.fail_open.enabled", "zonal_shift.config.enabled",
    "routing.http.desync_mitigation_mode", "routing.http.xff_client_port.enabled",
    "routing.http.xff_header_processing.mode", "routing.http.preserve_host_header.enabled",
    "routing.http.x_amzn_tls_version_and_cipher_suite.enabled", "routing.http2.enabled",
    "routing.http.drop_invalid_header_fields.enabled", "client_keep_alive.seconds",
}  # fmt: skip
TG_ATTRIBUTES_IGNORED = {
    "load_balancing.cross_zone.enabled", "waf.fail_open.enabled", "stickiness.type",
    "stickiness.lb_cookie.duration_seconds", "stickiness.app_cookie.cookie_name",
    "stickiness.app_cookie.duration_seconds", "load_balancing.algorithm.anomaly_mitigation",
    "target_group_health.dns_failover.minimum_healthy_targets.count",
    "target_group_health.dns_failover.minimum_healthy_targets.percentage",
    "target_group_health.unhealthy_state_routing.minimum_healthy_targets.count",
    "target_group_health.unhealthy_state_routing.minimum_healthy_targets.percentage",
}  # fmt: skip
ALGORITHMS = {"round_robin": "roundrobin", "least_outstanding_requests": "leastconn"}
TARGET_GROUP_FIELDS = {
    "TargetGroupArn", "TargetGroupName", "Protocol", "Port", "VpcId", "HealthCheckProtocol",
    "HealthCheckPort", "HealthCheckEnabled", "HealthCheckIntervalSeconds", "HealthCheckTimeoutSeconds",
    "HealthyThresholdCount", "UnhealthyThresholdCount", "HealthCheckPath", "Matcher", "LoadBalancerArns",
    "TargetType", "ProtocolVersion", "IpAddressType",
}  # fmt: skip


def _attributes(
    pairs: list[Mapping[str, str]], ignored: set[str], read: set[str], where: str
) -> dict[str, str]:
    attrs = {p["Key"]: p["Value"] for p in pairs}
    unknown = sorted(set(attrs) - ignored - read)
    if unknown:
        raise RehearsalError(f"{where}: attribute {', '.join(unknown)} cannot be rehearsed")
    return attrs


def _name(text: str) -> str:
    """An HAProxy identifier from an AWS name."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


def pattern_regex(pattern: str, where: str) -> str:
    """An ALB wildcard pattern (* any characters, ? one) as an anchored regex."""
    if not pattern or len(pattern) > 128:
        raise RehearsalError(f"{where}: pattern {pattern!r} is empty or longer than 128 characters")
    out = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    if re.search(r"\s", out):
        raise RehearsalError(f"{where}: pattern {pattern!r} holds white space")
    return f"^{out}$"


def matcher_codes(matcher: Mapping[str, Any], where: str) -> list[int]:
    """The HTTP codes of a target group matcher such as "200", "200,202" or "200-299"."""
    if "GrpcCode" in matcher:
        raise RehearsalError(f"{where}.Matcher.GrpcCode: gRPC health checks cannot be rehearsed")
    codes: list[int] = []
    for part in str(matcher.get("HttpCode", "200")).split(","):
        low, _, high = part.strip().partition("-")
        try:
            first, last = int(low), int(high or low)
        except ValueError:
            raise RehearsalError(
                f"{where}.Matcher.HttpCode: {matcher.get('HttpCode')!r} is not a code list"
            ) from None
        if not 200 <= first <= last <= 499:
            raise RehearsalError(f"{where}.Matcher.HttpCode: {part} is outside 200-499")
        codes += range(first, last + 1)
    return sorted(set(codes))


def _expect(codes: list[int]) -> str:
    if len(codes) == 1:
        return f"http-check expect status {codes[0]}"
    return "http-check expect rstatus ^(" + "|".join(str(c) for c in codes) + ")$"


def target_group_backend(
    tg: Mapping[str, Any],
    attributes: list[Mapping[str, str]],
    servers: list[tuple[str, int]],
    standby: frozenset[str] = frozenset(),
) -> tuple[list[str], dict[str, Any]]:
    """HAProxy backend lines for one target group, and the values it was built from.

    A server named in `standby` is listed with weight 0: known to HAProxy, health-checked, but
    given no traffic until the runtime API sets its weight (a replica being rolled in).
    """
    where = f"target group {tg['TargetGroupName']}"
    unknown = sorted(k for k in tg if k not in TARGET_GROUP_FIELDS)
    if unknown:
        raise RehearsalError(f"{where}: {', '.join(unknown)} cannot be rehearsed")
    for field, wanted in (
        ("Protocol", "HTTP"),
        ("HealthCheckProtocol", "HTTP"),
        ("ProtocolVersion", "HTTP1"),
    ):
        if tg.get(field, wanted) != wanted:
            raise RehearsalError(f"{where}.{field}: {tg[field]} cannot be rehearsed (only {wanted})")
    if tg.get("TargetType", "ip") not in ("ip", "instance"):
        raise RehearsalError(f"{where}.TargetType: {tg['TargetType']} cannot be rehearsed")
    read = {
        "deregistration_delay.timeout_seconds", "stickiness.enabled", "load_balancing.algorithm.type",
        "slow_start.duration_seconds", "deregistration_delay.connection_termination.enabled",
    }  # fmt: skip
    attrs = _attributes(attributes, TG_ATTRIBUTES_IGNORED, read, where)
    if attrs.get("stickiness.enabled", "false") != "false":
        raise RehearsalError(f"{where}: attribute stickiness.enabled=true cannot be rehearsed")
    if attrs.get("deregistration_delay.connection_termination.enabled", "false") != "false":
        raise RehearsalError(
            f"{where}: attribute deregistration_delay.connection_termination.enabled cannot be rehearsed"
        )
    algorithm = attrs.get("load_balancing.algorithm.type", "round_robin")
    if algorithm not in ALGORITHMS:
        raise RehearsalError(
            f"{where}: attribute load_balancing.algorithm.type={algorithm} cannot be rehearsed"
        )
    values = {
        "name": tg["TargetGroupName"],
        "arn": tg["TargetGroupArn"],
        "health_check_enabled": bool(tg.get("HealthCheckEnabled", True)),
        "path": tg.get("HealthCheckPath", "/"),
        "codes": matcher_codes(tg.get("Matcher") or {}, where),
        "interval": int(tg.get("HealthCheckIntervalSeconds", 30)),
        "timeout": int(tg.get("HealthCheckTimeoutSeconds", 5)),
        "healthy_threshold": int(tg.get("HealthyThresholdCount", 5)),
        "unhealthy_threshold": int(tg.get("UnhealthyThresholdCount", 2)),
        "deregistration_delay": int(attrs.get("deregistration_delay.timeout_seconds", 300)),
        "slow_start": int(attrs.get("slow_start.duration_seconds", 0)),
        "servers": [name for name, _ in servers],
    }
    if re.search(r"\s", values["path"]):
        raise RehearsalError(f"{where}.HealthCheckPath: {values['path']!r} holds white space")
    port = tg.get("HealthCheckPort", "traffic-port")
    lines = [
        f"backend {_name(values['name'])}",
        f"    # target group {values['arn']}; deregistration delay {values['deregistration_delay']} s",
        f"    balance {ALGORITHMS[algorithm]}",
        f"    timeout check {values['timeout']}s",
        # On ECS a task that dies leaves its target group and its replacement gets traffic only
        # once healthy; a replica here restarts in place under its name, refusing connections
        # until it listens. A refused connection carried no request: try the next target, as
        # the ALB sends nothing to a target that is gone (a request already sent is never retried).
        "    retries 3",
        "    option redispatch 1",
    ]
    server_options = ["resolvers docker", "init-addr last,libc,none"]
    if values["health_check_enabled"]:
        lines += [
            "    option httpchk",
            f"    http-check send meth GET uri {values['path']}",
            f"    {_expect(values['codes'])}",
        ]
        server_options += [
            "check",
            f"inter {values['interval']}s",
            f"rise {values['healthy_threshold']}",
            f"fall {values['unhealthy_threshold']}",
        ]
        if port != "traffic-port":
            server_options.append(f"port {int(port)}")
    if values["slow_start"]:
        server_options.append(f"slowstart {values['slow_start']}s")
    lines.append("    default-server " + " ".join(server_options))
    lines += [
        f"    server {_name(name)} {name}:{server_port}" + (" weight 0" if name in standby else "")
        for name, server_port in servers
    ]
    return lines, values


def _conditions(conditions: list[Mapping[str, Any]], label: str, where: str) -> tuple[list[str], list[str]]:
    """acl lines and their names (ANDed) for a rule's conditions."""
    acls, names = [], []
    for i, condition in enumerate(conditions):
        here = f"{where}.Conditions[{i}]"
        field = condition.get("Field")
        if field == "path-pattern":
            values = (condition.get("PathPatternConfig") or {}).get("Values") or condition.get("Values") or []
            fetch = "path_reg"
        elif field == "host-header":
            values = (condition.get("HostHeaderConfig") or {}).get("Values") or condition.get("Values") or []
            fetch = "req.hdr(host),field(1,:) -m reg -i"
        else:
            raise RehearsalError(
                f"{here}.Field: {field} cannot be rehearsed (path-pattern and host-header only)"
            )
        if not values:
            raise RehearsalError(f"{here}: no values")
        name = f"{label}_c{i}"
        regexes = " ".join(pattern_regex(v, f"{here}.Values") for v in values)
        acls.append(f"    acl {name} {fetch} {regexes}")
        names.append(name)
    return acls, names


def _action(
    actions: list[Mapping[str, Any]], target_groups: Mapping[str, str], where: str
) -> tuple[str, str]:
    """(kind, HAProxy argument) of a rule's one action: forward to a backend, or an http-request line."""
    if len(actions) != 1:
        kinds = ", ".join(a.get("Type", "?") for a in actions)
        raise RehearsalError(
            f"{where}.Actions: {kinds}: only a single forward, redirect or fixed-response is rehearsed"
        )
    action = actions[0]
    kind = action.get("Type")
    if kind == "forward":
        arn = action.get("TargetGroupArn")
        forward = action.get("ForwardConfig") or {}
        groups = forward.get("TargetGroups") or []
        if not arn and len(groups) == 1:
            arn = groups[0]["TargetGroupArn"]
        if not arn:
            raise RehearsalError(
                f"{where}.Actions[0].ForwardConfig: weighted target groups cannot be rehearsed"
            )
        if (forward.get("TargetGroupStickinessConfig") or {}).get("Enabled"):
            raise RehearsalError(
                f"{where}.Actions[0].ForwardConfig.TargetGroupStickinessConfig cannot be rehearsed"
            )
        if arn not in target_groups:
            raise RehearsalError(
                f"{where}.Actions[0]: target group {arn} is not attached to the load balancer"
            )
        return "forward", target_groups[arn]
    if kind == "redirect":
        config = action.get("RedirectConfig") or {}
        for field, default in (("Host", "#{host}"), ("Path", "/#{path}"), ("Query", "#{query}")):
            if config.get(field, default) != default:
                raise RehearsalError(
                    f"{where}.Actions[0].RedirectConfig.{field}: only {default} is rehearsed"
                )
        code = {"HTTP_301": 301, "HTTP_302": 302}.get(config.get("StatusCode", ""))
        if code is None:
            raise RehearsalError(
                f"{where}.Actions[0].RedirectConfig.StatusCode: {config.get('StatusCode')!r}"
            )
        scheme = config.get("Protocol", "#{protocol}")
        if scheme not in ("HTTP", "HTTPS"):
            raise RehearsalError(f"{where}.Actions[0].RedirectConfig.Protocol: {scheme} cannot be rehearsed")
        port = config.get("Port", "#{port}")
        default_port = "443" if scheme == "HTTPS" else "80"
        suffix = "" if port == default_port else f":{int(port)}"
        # What the ALB answers: same host (without its port), path and query, the new scheme and port.
        location = f"{scheme.lower()}://%[req.hdr(host),field(1,:)]{suffix}%[capture.req.uri]"
        return "http", f"redirect location {location} code {code}"
    if kind == "fixed-response":
        config = action.get("FixedResponseConfig") or {}
        status = int(config.get("StatusCode", 200))
        body = str(config.get("MessageBody", "")).replace("\\", "\\\\").replace('"', '\\"')
        ctype = config.get("ContentType", "text/plain")
        return "http", f'return status {status} content-type "{ctype}" string "{body}"'
    raise RehearsalError(f"{where}.Actions[0].Type: {kind} cannot be rehearsed")


def _priority(rule: Mapping[str, Any]) -> tuple[int, int]:
    return (
        (1, 0) if rule.get("IsDefault") or rule.get("Priority") == "default" else (0, int(rule["Priority"]))
    )


def proxy_config(
    snapshot: Mapping[str, Any],
    plan: Mapping[str, Any],
    listener_ports: Mapping[int, int],
    bind_address: str = "0.0.0.0",
    stats_port: int = 8404,
    standby: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """The HAProxy configuration text, with the listeners, target groups and omissions it was built from.

    Replicas named in `standby` are listed with weight 0 (see target_group_backend).
    """
    lb = snapshot["load_balancer"]
    where = f"load balancer {lb['LoadBalancerName']}"
    if lb.get("Type", "application") != "application":
        raise RehearsalError(f"{where}.Type: {lb['Type']} cannot be rehearsed (application only)")
    attrs = _attributes(
        snapshot.get("load_balancer_attributes") or [],
        LB_ATTRIBUTES_IGNORED,
        {"idle_timeout.timeout_seconds"},
        where,
    )
    not_rehearsed = []
    if "idle_timeout.timeout_seconds" in attrs:
        idle = int(attrs["idle_timeout.timeout_seconds"])
    else:
        idle = DEFAULT_IDLE_TIMEOUT
        not_rehearsed.append(
            f"{where}: the endpoint gives no idle timeout; the AWS default of {idle} s is used"
        )
    servers: dict[str, list[tuple[str, int]]] = {}
    for service in plan["services"]:
        for target in service["targets"]:
            servers.setdefault(target["target_group_arn"], []).extend(
                (spec["name"], target["port"]) for spec in service["replicas"]
            )
    backends: dict[str, str] = {}
    backend_lines: list[str] = []
    groups = []
    for tg in sorted(snapshot["target_groups"], key=lambda t: t["TargetGroupName"]):
        lines, values = target_group_backend(
            tg,
            snapshot["target_group_attributes"].get(tg["TargetGroupArn"], []),
            servers.get(tg["TargetGroupArn"], []),
            standby,
        )
        backends[tg["TargetGroupArn"]] = _name(tg["TargetGroupName"])
        backend_lines += ["", *lines]
        groups.append(values)
    frontend_lines: list[str] = []
    listeners = []
    for listener in sorted(snapshot["listeners"], key=lambda item: item["Port"]):
        port = int(listener["Port"])
        here = f"listener {listener['Protocol']}:{port}"
        if port not in listener_ports:
            raise RehearsalError(f"{here}: port {port} is not in aws_rehearsal_listener_ports")
        if listener["Protocol"] not in ("HTTP", "HTTPS"):
            raise RehearsalError(f"{here}.Protocol: {listener['Protocol']} cannot be rehearsed")
        if listener.get("MutualAuthentication", {}).get("Mode", "off") != "off":
            raise RehearsalError(f"{here}.MutualAuthentication cannot be rehearsed")
        local = int(listener_ports[port])
        lines = [
            "",
            f"frontend listener_{port}",
            f"    # {listener['Protocol']} listener {listener['ListenerArn']}",
            f"    bind {bind_address}:{local}",
            "    option forwardfor",
            f"    http-request set-header X-Forwarded-Proto {listener['Protocol'].lower()}",
            f"    http-request set-header X-Forwarded-Port {port}",
        ]
        if listener["Protocol"] == "HTTPS":
            certificates = (
                ", ".join(c["CertificateArn"] for c in listener.get("Certificates") or []) or "none"
            )
            not_rehearsed.append(
                f"{here}: served as plain HTTP on port {local}; TLS (certificate {certificates}, policy "
                f"{listener.get('SslPolicy', '?')}) is not rehearsed"
            )
        rules = sorted(snapshot["rules"].get(listener["ListenerArn"], []), key=_priority)
        if not rules:
            rules = [
                {
                    "IsDefault": True,
                    "Priority": "default",
                    "Conditions": [],
                    "Actions": listener["DefaultActions"],
                }
            ]
        routes = []
        for rule in rules:
            label = "default" if _priority(rule)[0] else f"rule_{rule['Priority']}"
            rule_where = f"{here} rule {rule.get('Priority')}"
            acls, names = _conditions(rule.get("Conditions") or [], f"l{port}_{label}", rule_where)
            kind, argument = _action(rule.get("Actions") or [], backends, rule_where)
            lines += acls
            condition = f" if {' '.join(names)}" if names else ""
            if kind == "forward":
                if names:
                    lines.append(f"    use_backend {argument}{condition}")
                else:
                    lines.append(f"    default_backend {argument}")
            else:
                lines.append(f"    http-request {argument}{condition}")
            routes.append(
                {"priority": rule.get("Priority"), "conditions": rule.get("Conditions") or [], kind: argument}
            )
        frontend_lines += lines
        listeners.append(
            {"port": port, "local_port": local, "protocol": listener["Protocol"], "routes": routes}
        )
    head = [
        f"# Stand-in for ALB {lb['LoadBalancerName']} ({lb['LoadBalancerArn']}), generated from its",
        "# listeners, rules and target groups by tengen.ops.ecs_rehearsal_plan. Do not edit.",
        "global",
        "    log stdout format raw local0",
        "    # Two descriptors per connection: 8000 stays within a container's usual 20000.",
        "    maxconn 8000",
        "    # The runtime API; a reload hands the listening sockets over through it (none refused).",
        "    stats socket /run/haproxy/admin.sock mode 600 level admin expose-fd listeners",
        "",
        "resolvers docker",
        "    # Docker's embedded DNS: replicas keep their names when they restart with new addresses.",
        "    nameserver dns 127.0.0.11:53",
        "    hold valid 2s",
        "    hold nx 2s",
        "",
        "defaults",
        "    mode http",
        "    log global",
        "    option httplog",
        "    option dontlognull",
        "    # A graceful reload (USR2 to the master) keeps established connections: the old worker",
        "    # answers one more request on an idle keep-alive connection, with Connection: close,",
        "    # instead of closing it under a client about to send (a POST is not retried).",
        "    option idle-close-on-response",
        f"    timeout connect {CONNECT_TIMEOUT}s",
        f"    # The ALB's idle timeout ({idle} s) applies to both sides and to WebSocket tunnels.",
        f"    timeout client {idle}s",
        f"    timeout server {idle}s",
        f"    timeout tunnel {idle}s",
        f"    timeout http-request {idle}s",
        "",
        "listen stats",
        f"    bind {bind_address}:{stats_port}",
        "    stats enable",
        "    stats uri /stats",
        "    stats refresh 5s",
    ]
    return {
        "config": "\n".join(head + frontend_lines + backend_lines) + "\n",
        "idle_timeout": idle,
        "listeners": listeners,
        "target_groups": groups,
        # Each server as HAProxy's runtime API and statistics name it.
        "servers": [
            f"{_name(group['name'])}/{_name(server)}" for group in groups for server in group["servers"]
        ],
        "not_rehearsed": not_rehearsed,
    }
