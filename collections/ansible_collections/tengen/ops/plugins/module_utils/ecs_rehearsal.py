"""What an ECS stack would run, translated into containers on one Docker engine (the rehearsal).

`read_snapshot` reads the describe_* answers of a deployed scale-out stack (ECS services and
task definitions, the ALB with its listeners, rules and target groups, the Secrets Manager
values the tasks name, the Cloud Map services the ECS services register with). `translate`
turns such a snapshot into a plan: one container per replica with the task definition's
settings, PostgreSQL and Redis where the secrets say the data stores are, and the network
aliases Cloud Map would answer. `proxy.py` turns the ALB part into an HAProxy configuration.

A field the rehearsal cannot represent raises RehearsalError naming the field; nothing is
dropped silently. Fields that are deliberately not rehearsed (IAM roles, security groups, TLS
certificates) are listed in the plan's `not_rehearsed` with the reason.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit


class RehearsalError(ValueError):
    """The snapshot holds something the rehearsal cannot run as AWS would; the message names it."""


# -- reading ------------------------------------------------------------------------------------

ClientFactory = Callable[[str], Any]


def _clean(answer: Any) -> Any:
    """JSON-safe copy of a boto3 answer (datetimes as ISO strings, no ResponseMetadata)."""
    if isinstance(answer, dict):
        return {k: _clean(v) for k, v in answer.items() if k != "ResponseMetadata"}
    if isinstance(answer, list):
        return [_clean(v) for v in answer]
    if hasattr(answer, "isoformat"):
        return answer.isoformat()
    return answer


def secret_id(value_from: str) -> tuple[str, str]:
    """(secret id, JSON key) of an ECS `valueFrom` naming a Secrets Manager secret.

    arn:aws:secretsmanager:<region>:<account>:secret:<name>[:<json-key>:<stage>:<version>]
    """
    parts = value_from.split(":")
    if len(parts) < 7 or parts[2] != "secretsmanager" or parts[5] != "secret":
        raise RehearsalError(
            f"secrets valueFrom {value_from!r}: only Secrets Manager secret ARNs are rehearsed"
        )
    extra = parts[7:] + ["", "", ""]
    key, stage, version = extra[0], extra[1], extra[2]
    if stage or version:
        raise RehearsalError(
            f"secrets valueFrom {value_from!r}: a version stage or id cannot be rehearsed "
            "(the current value is read)"
        )
    return ":".join(parts[:7]), key


def read_snapshot(client: ClientFactory, cluster: str, load_balancer: str) -> dict[str, Any]:
    """Every describe_* answer the translation needs, as the endpoint gives them.

    Raises RehearsalError when the cluster, its services or the load balancer are missing
    (the track has not run against this endpoint).
    """
    ecs, elb = client("ecs"), client("elbv2")
    clusters = ecs.describe_clusters(clusters=[cluster])["clusters"]
    if not [c for c in clusters if c.get("status") == "ACTIVE"]:
        raise RehearsalError(
            f"no active ECS cluster {cluster!r} at this endpoint: run playbooks/scale-out/all.yml first"
        )
    arns: list[str] = []
    for page in ecs.get_paginator("list_services").paginate(cluster=cluster):
        arns += page["serviceArns"]
    if not arns:
        raise RehearsalError(
            f"ECS cluster {cluster!r} runs no service: run playbooks/scale-out/all.yml first"
        )
    services = []
    for start in range(0, len(arns), 10):
        services += ecs.describe_services(cluster=cluster, services=arns[start : start + 10])["services"]
    services = sorted((s for s in services if s.get("status") == "ACTIVE"), key=lambda s: s["serviceName"])
    task_definitions = {}
    for service in services:
        arn = service["taskDefinition"]
        if arn not in task_definitions:
            task_definitions[arn] = ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
    secrets: dict[str, str] = {}
    for definition in task_definitions.values():
        for container in definition.get("containerDefinitions", []):
            for item in container.get("secrets") or []:
                sid, _ = secret_id(item["valueFrom"])
                if sid not in secrets:
                    secrets[sid] = client("secretsmanager").get_secret_value(SecretId=sid)["SecretString"]
    registries = {}
    for service in services:
        for registry in service.get("serviceRegistries") or []:
            arn = registry["registryArn"]
            sd = client("servicediscovery")
            described = sd.get_service(Id=arn.rsplit("/", 1)[-1])["Service"]
            namespace = sd.get_namespace(Id=described["NamespaceId"])["Namespace"]
            registries[arn] = {"service": described, "namespace": namespace}
    try:
        lbs = elb.describe_load_balancers(Names=[load_balancer])["LoadBalancers"]
    except Exception as exc:  # botocore's LoadBalancerNotFound: say what is missing, not the stack trace
        raise RehearsalError(
            f"no load balancer {load_balancer!r} at this endpoint: "
            f"run playbooks/scale-out/all.yml first ({exc})"
        ) from None
    lb = lbs[0]
    lb_arn = lb["LoadBalancerArn"]
    listeners = elb.describe_listeners(LoadBalancerArn=lb_arn)["Listeners"]
    rules = {
        listener["ListenerArn"]: elb.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"]
        for listener in listeners
    }
    target_groups = elb.describe_target_groups(LoadBalancerArn=lb_arn)["TargetGroups"]
    return _clean(
        {
            "cluster": cluster,
            "services": services,
            "task_definitions": task_definitions,
            "secrets": secrets,
            "registries": registries,
            "load_balancer": lb,
            "load_balancer_attributes": elb.describe_load_balancer_attributes(LoadBalancerArn=lb_arn)[
                "Attributes"
            ],
            "listeners": listeners,
            "rules": rules,
            "target_groups": target_groups,
            "target_group_attributes": {
                tg["TargetGroupArn"]: elb.describe_target_group_attributes(
                    TargetGroupArn=tg["TargetGroupArn"]
                )["Attributes"]
                for tg in target_groups
            },
        }
    )


# -- translation --------------------------------------------------------------------------------


def _empty(value: Any) -> bool:
    return value is None or value == [] or value == {} or value == "" or value == 0


def _refuse_unknown(where: str, data: Mapping[str, Any], known: set[str]) -> None:
    unknown = sorted(k for k, v in data.items() if k not in known and not _empty(v))
    if unknown:
        raise RehearsalError(
            f"{where}: {', '.join(unknown)} cannot be rehearsed (no equivalent on one Docker engine)"
        )


# Task definition fields the translation reads, and those it only records.
TASK_FIELDS = {
    "family", "taskDefinitionArn", "revision", "status", "containerDefinitions", "networkMode", "volumes",
    "cpu", "memory", "runtimePlatform", "requiresCompatibilities", "compatibilities", "requiresAttributes",
    "registeredAt", "registeredBy", "executionRoleArn", "taskRoleArn", "placementConstraints",
    "ephemeralStorage",
}  # fmt: skip
CONTAINER_FIELDS = {
    "name", "image", "cpu", "memory", "memoryReservation", "essential", "command", "entryPoint",
    "environment",
    "secrets", "portMappings", "healthCheck", "user", "readonlyRootFilesystem", "mountPoints", "volumesFrom",
    "ulimits", "stopTimeout", "logConfiguration", "workingDirectory", "dockerLabels", "linuxParameters",
}  # fmt: skip
SERVICE_FIELDS_REFUSED = ("placementConstraints", "placementStrategy", "taskSets", "volumeConfigurations")
ARCHITECTURES = {"x86_64": "X86_64", "amd64": "X86_64", "aarch64": "ARM64", "arm64": "ARM64"}
# ulimit names ECS accepts -> Docker's names.
ULIMITS = {
    "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc", "rss",
    "rtprio",
    "rttime", "sigpending", "stack",
}  # fmt: skip
DATASTORE_SCHEMES = {"postgresql": "postgres", "postgres": "postgres", "redis": "redis", "rediss": "redis"}


def _seconds(value: int | None, default: int) -> str:
    return f"{value if value is not None else default}s"


def map_image(image: str, registry_map: Mapping[str, str]) -> str:
    """The image reference with its registry host replaced as registry_map says."""
    host, sep, rest = image.partition("/")
    if not sep or ("." not in host and ":" not in host and host != "localhost"):
        raise RehearsalError(
            f"image {image!r}: names no registry host; the rehearsal pulls every image from a registry"
        )
    if host not in registry_map:
        raise RehearsalError(
            f"image {image!r}: registry {host} is not in aws_rehearsal_registry_map "
            f"({', '.join(registry_map) or 'empty'})"
        )
    return f"{registry_map[host]}/{rest}"


def resolve_secret(value_from: str, secrets: Mapping[str, str], where: str) -> str:
    sid, key = secret_id(value_from)
    if sid not in secrets:
        raise RehearsalError(f"{where}: secret {sid} was not read")
    raw = secrets[sid]
    if not key:
        return raw
    try:
        data = json.loads(raw)
    except ValueError:
        raise RehearsalError(f"{where}: secret {sid} is not JSON, so it has no key {key!r}") from None
    if key not in data:
        raise RehearsalError(f"{where}: secret {sid} has no key {key!r}")
    return str(data[key])


def datastore(name: str, url: str, where: str) -> dict[str, Any] | None:
    """A data store the URL points at (PostgreSQL or Redis), or None for any other value."""
    parts = urlsplit(url)
    kind = DATASTORE_SCHEMES.get(parts.scheme)
    if kind is None or not parts.hostname:
        return None
    store: dict[str, Any] = {
        "kind": kind,
        "variable": name,
        "host": parts.hostname,
        "port": parts.port or (5432 if kind == "postgres" else 6379),
        "user": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "tls": parts.scheme == "rediss"
        or "sslmode=require" in parts.query
        or "sslmode=verify" in parts.query,
    }
    if kind == "postgres":
        store["database"] = parts.path.lstrip("/") or store["user"]
        if not store["user"] or not store["password"]:
            raise RehearsalError(f"{where}: {name} names no user and password for PostgreSQL")
    elif store["user"] and store["user"] != "default":
        raise RehearsalError(
            f"{where}: {name} names Redis user {store['user']!r}; only the AUTH token is rehearsed"
        )
    return store


def image_reference(image: str) -> dict[str, str]:
    """registry, repository and tag (or digest) of an image reference that names its registry."""
    registry, _, rest = image.partition("/")
    if "@" in rest:
        repository, _, reference = rest.partition("@")
    else:
        repository, _, reference = rest.rpartition(":") if ":" in rest else (rest, "", "latest")
    return {"image": image, "registry": registry, "repository": repository, "reference": reference}


def rehearsed_url(url: str) -> str:
    """REDIS_URL as the rehearsal serves it: the rehearsal's Redis speaks no TLS, so rediss:// becomes redis://."""
    parts = urlsplit(url)
    if parts.scheme == "rediss":
        return urlunsplit(("redis",) + tuple(parts)[1:])
    return url


def _health_check(check: Mapping[str, Any], where: str) -> dict[str, Any]:
    _refuse_unknown(where, check, {"command", "interval", "timeout", "retries", "startPeriod"})
    command = list(check.get("command") or [])
    if not command or command[0] not in ("CMD", "CMD-SHELL"):
        raise RehearsalError(f"{where}.command: must start with CMD or CMD-SHELL, not {command[:1]}")
    # ECS defaults: 30 s interval, 5 s timeout, 3 retries, no start period.
    return {
        "test": command,
        "interval": _seconds(check.get("interval"), 30),
        "timeout": _seconds(check.get("timeout"), 5),
        "retries": check.get("retries", 3),
        "start_period": _seconds(check.get("startPeriod"), 0),
    }


def _log_config(config: Mapping[str, Any] | None, where: str) -> dict[str, Any]:
    if not config:
        return {"log_driver": "local", "log_options": {}}
    _refuse_unknown(where, config, {"logDriver", "options", "secretOptions"})
    if config.get("logDriver") != "awslogs":
        raise RehearsalError(
            f"{where}.logDriver: {config.get('logDriver')!r} cannot be rehearsed (only awslogs)"
        )
    options = config.get("options") or {}
    known = {"awslogs-group", "awslogs-region", "awslogs-stream-prefix", "awslogs-create-group", "mode"}
    _refuse_unknown(f"{where}.options", options, known)
    # CloudWatch is out of reach: the lines go to Docker's local log driver (docker logs), and the
    # log group the task names is kept as a label on the container.
    return {"log_driver": "local", "log_options": {}, "log_group": options.get("awslogs-group", "")}


def _port_mappings(mappings: list[Mapping[str, Any]], where: str) -> list[int]:
    ports = []
    for i, mapping in enumerate(mappings):
        here = f"{where}[{i}]"
        _refuse_unknown(here, mapping, {"containerPort", "hostPort", "protocol", "name", "appProtocol"})
        if mapping.get("protocol", "tcp") != "tcp":
            raise RehearsalError(f"{here}.protocol: {mapping['protocol']} cannot be rehearsed (only tcp)")
        if mapping.get("hostPort") not in (None, mapping["containerPort"]):
            raise RehearsalError(
                f"{here}.hostPort: awsvpc tasks use the container port, not {mapping['hostPort']}"
            )
        ports.append(int(mapping["containerPort"]))
    return ports


def _volumes(task: Mapping[str, Any], where: str) -> dict[str, dict[str, Any]]:
    volumes = {}
    for i, volume in enumerate(task.get("volumes") or []):
        here = f"{where}.volumes[{i}]"
        _refuse_unknown(here, volume, {"name", "host", "configuredAtLaunch"})
        host = volume.get("host") or {}
        if host.get("sourcePath"):
            raise RehearsalError(f"{here}.host.sourcePath: Fargate has no host paths; it cannot be rehearsed")
        if volume.get("configuredAtLaunch"):
            raise RehearsalError(f"{here}.configuredAtLaunch: a volume chosen at launch cannot be rehearsed")
        volumes[volume["name"]] = volume
    return volumes


def _mounts(
    container: Mapping[str, Any], volumes: Mapping[str, Any], replica: str, where: str
) -> list[dict[str, Any]]:
    mounts = []
    for i, point in enumerate(container.get("mountPoints") or []):
        here = f"{where}.mountPoints[{i}]"
        _refuse_unknown(here, point, {"sourceVolume", "containerPath", "readOnly"})
        if point.get("sourceVolume") not in volumes:
            raise RehearsalError(
                f"{here}.sourceVolume: {point.get('sourceVolume')!r} is not a volume of the task"
            )
        # A Fargate task volume is scratch space that lives and dies with the task: a Docker
        # volume per replica, removed with the replica.
        mounts.append(
            {
                "type": "volume",
                "source": f"{replica}-{point['sourceVolume']}",
                "target": point["containerPath"],
                "read_only": bool(point.get("readOnly", False)),
            }
        )
    return mounts


def _ulimits(ulimits: list[Mapping[str, Any]], where: str) -> list[str]:
    out = []
    for i, limit in enumerate(ulimits):
        here = f"{where}[{i}]"
        _refuse_unknown(here, limit, {"name", "softLimit", "hardLimit"})
        if limit.get("name") not in ULIMITS:
            raise RehearsalError(f"{here}.name: unknown ulimit {limit.get('name')!r}")
        out.append(f"{limit['name']}:{int(limit['softLimit'])}:{int(limit['hardLimit'])}")
    return out


def _linux_parameters(params: Mapping[str, Any] | None, where: str) -> bool:
    """True when the task asks for an init process (the one Fargate Linux parameter rehearsed)."""
    if not params:
        return False
    _refuse_unknown(where, params, {"initProcessEnabled"})
    return bool(params.get("initProcessEnabled"))


def translate_container(
    task: Mapping[str, Any],
    container: Mapping[str, Any],
    *,
    replica: str,
    secrets: Mapping[str, str],
    registry_map: Mapping[str, str],
    stores: dict[str, dict[str, Any]],
    single: bool,
) -> dict[str, Any]:
    """docker_container parameters for one container of one replica of a task."""
    where = f"task definition {task['family']}:{task['revision']} container {container['name']}"
    _refuse_unknown(where, container, CONTAINER_FIELDS)
    if not _empty(container.get("volumesFrom")):
        raise RehearsalError(f"{where}: volumesFrom cannot be rehearsed")
    env: dict[str, str] = {}
    for item in container.get("environment") or []:
        env[item["name"]] = str(item.get("value", ""))
    secret_names = []
    for i, item in enumerate(container.get("secrets") or []):
        here = f"{where}.secrets[{i}] ({item['name']})"
        value = resolve_secret(item["valueFrom"], secrets, here)
        store = datastore(item["name"], value, here)
        if store is not None:
            key = f"{store['kind']}:{store['host']}:{store['port']}"
            known = stores.setdefault(key, store)
            if (known["user"], known["password"]) != (store["user"], store["password"]):
                raise RehearsalError(f"{here}: {store['host']} is named with two different credentials")
            value = rehearsed_url(value)
        env[item["name"]] = value
        secret_names.append(item["name"])
    volumes = _volumes(task, f"task definition {task['family']}:{task['revision']}")
    log = _log_config(container.get("logConfiguration"), f"{where}.logConfiguration")
    spec: dict[str, Any] = {
        "name": replica,
        "image": map_image(container["image"], registry_map),
        "env": env,
        "secret_env": secret_names,
        "ports": _port_mappings(container.get("portMappings") or [], f"{where}.portMappings"),
        "read_only": bool(container.get("readonlyRootFilesystem", False)),
        "mounts": _mounts(container, volumes, replica, where),
        "ulimits": _ulimits(container.get("ulimits") or [], f"{where}.ulimits"),
        # ECS waits 30 s by default between SIGTERM and SIGKILL.
        "stop_timeout": int(container.get("stopTimeout", 30)),
        # An essential container that stops ends its task and ECS starts another: Docker restarts it.
        "restart_policy": "always" if container.get("essential", True) else "no",
        "essential": bool(container.get("essential", True)),
        "init": _linux_parameters(container.get("linuxParameters"), f"{where}.linuxParameters"),
        "log_driver": log["log_driver"],
        "log_options": log["log_options"],
        "labels": {
            **{str(k): str(v) for k, v in (container.get("dockerLabels") or {}).items()},
            "tengen.rehearsal.task_definition": f"{task['family']}:{task['revision']}",
            "tengen.rehearsal.log_group": log.get("log_group", ""),
        },
    }
    for field, key in (("command", "command"), ("entryPoint", "entrypoint"), ("user", "user")):
        if not _empty(container.get(field)):
            spec[key] = container[field]
    if container.get("workingDirectory"):
        spec["working_dir"] = container["workingDirectory"]
    if container.get("healthCheck"):
        spec["healthcheck"] = _health_check(container["healthCheck"], f"{where}.healthCheck")
    else:
        # ECS ignores an image's HEALTHCHECK unless the task definition has one: so does the rehearsal.
        spec["healthcheck"] = {"test": ["NONE"]}
    if not _empty(container.get("memory")):
        spec["memory"] = f"{int(container['memory'])}M"
    if not _empty(container.get("memoryReservation")):
        spec["memory_reservation"] = f"{int(container['memoryReservation'])}M"
    if not _empty(container.get("cpu")):
        spec["cpu_shares"] = int(container["cpu"])
    if single:
        # Fargate enforces the task size; with one container the container's limits are the task's.
        if task.get("cpu"):
            spec["cpus"] = int(task["cpu"]) / 1024
        if task.get("memory") and "memory" not in spec:
            spec["memory"] = f"{int(task['memory'])}M"
    return spec


def _check_task(task: Mapping[str, Any], architecture: str) -> None:
    where = f"task definition {task['family']}:{task['revision']}"
    _refuse_unknown(where, task, TASK_FIELDS)
    if task.get("networkMode", "awsvpc") != "awsvpc":
        raise RehearsalError(f"{where}.networkMode: {task['networkMode']} cannot be rehearsed (only awsvpc)")
    if not _empty(task.get("placementConstraints")):
        raise RehearsalError(f"{where}.placementConstraints cannot be rehearsed")
    platform = task.get("runtimePlatform") or {}
    _refuse_unknown(f"{where}.runtimePlatform", platform, {"cpuArchitecture", "operatingSystemFamily"})
    if platform.get("operatingSystemFamily", "LINUX") != "LINUX":
        raise RehearsalError(f"{where}.runtimePlatform.operatingSystemFamily: only LINUX is rehearsed")
    wanted = platform.get("cpuArchitecture")
    here = ARCHITECTURES.get(architecture, architecture)
    if wanted and wanted != here:
        raise RehearsalError(
            f"{where}.runtimePlatform.cpuArchitecture: {wanted}, but the Docker host is {here}"
        )
    if len(task.get("containerDefinitions") or []) != 1:
        raise RehearsalError(
            f"{where}.containerDefinitions: {len(task.get('containerDefinitions') or [])} containers; "
            "the rehearsal runs tasks of exactly one container"
        )


def translate(
    snapshot: Mapping[str, Any],
    *,
    registry_map: Mapping[str, str],
    network: str,
    architecture: str = "x86_64",
    prefix: str | None = None,
) -> dict[str, Any]:
    """The rehearsal plan of a snapshot (see the module's RETURN for its shape)."""
    cluster = snapshot["cluster"]
    prefix = f"{cluster}-" if prefix is None else prefix
    stores: dict[str, dict[str, Any]] = {}
    services = []
    not_rehearsed: list[str] = []
    for service in snapshot["services"]:
        name = service["serviceName"]
        where = f"service {name}"
        for field in SERVICE_FIELDS_REFUSED:
            if not _empty(service.get(field)):
                raise RehearsalError(f"{where}: {field} cannot be rehearsed")
        if service.get("schedulingStrategy", "REPLICA") != "REPLICA":
            raise RehearsalError(f"{where}.schedulingStrategy: only REPLICA is rehearsed")
        if (service.get("deploymentController") or {}).get("type", "ECS") != "ECS":
            raise RehearsalError(f"{where}.deploymentController: only ECS rolling updates are rehearsed")
        task = snapshot["task_definitions"].get(service["taskDefinition"])
        if task is None:
            raise RehearsalError(f"{where}: task definition {service['taskDefinition']} was not read")
        _check_task(task, architecture)
        container = task["containerDefinitions"][0]
        aliases = []
        for registry in service.get("serviceRegistries") or []:
            _refuse_unknown(f"{where}.serviceRegistries", registry, {"registryArn"})
            found = snapshot["registries"].get(registry["registryArn"])
            if found is None:
                raise RehearsalError(f"{where}.serviceRegistries: {registry['registryArn']} was not read")
            records = found["service"].get("DnsConfig", {}).get("DnsRecords", [])
            if [r for r in records if r.get("Type") != "A"]:
                raise RehearsalError(
                    f"{where}.serviceRegistries: only A records are rehearsed (Docker aliases)"
                )
            aliases.append(f"{found['service']['Name']}.{found['namespace']['Name']}")
        count = int(service.get("desiredCount", 0))
        replicas = [
            translate_container(
                task,
                container,
                replica=f"{prefix}{name}-{n}",
                secrets=snapshot["secrets"],
                registry_map=registry_map,
                stores=stores,
                single=True,
            )
            for n in range(1, count + 1)
        ]
        for spec in replicas:
            spec["networks"] = [{"name": network, "aliases": aliases}]
            spec["labels"]["tengen.rehearsal.service"] = name
        targets = []
        for i, lb in enumerate(service.get("loadBalancers") or []):
            _refuse_unknown(
                f"{where}.loadBalancers[{i}]", lb, {"targetGroupArn", "containerName", "containerPort"}
            )
            if lb.get("containerName") != container["name"]:
                raise RehearsalError(
                    f"{where}.loadBalancers[{i}].containerName: {lb.get('containerName')} is not in the task"
                )
            mapped = {int(m["containerPort"]) for m in container.get("portMappings") or []}
            if int(lb["containerPort"]) not in mapped:
                raise RehearsalError(
                    f"{where}.loadBalancers[{i}].containerPort: {lb['containerPort']} is not mapped"
                )
            targets.append({"target_group_arn": lb["targetGroupArn"], "port": int(lb["containerPort"])})
        deployment = service.get("deploymentConfiguration") or {}
        services.append(
            {
                "name": name,
                "task_definition": f"{task['family']}:{task['revision']}",
                "desired_count": count,
                "replicas": replicas,
                "aliases": aliases,
                "targets": targets,
                "minimum_healthy_percent": int(deployment.get("minimumHealthyPercent", 100)),
                "maximum_percent": int(deployment.get("maximumPercent", 200)),
                "health_check_grace_seconds": int(service.get("healthCheckGracePeriodSeconds") or 0),
            }
        )
        for field, reason in (
            ("taskRoleArn", "IAM is not rehearsed: the containers get no AWS credentials"),
            ("executionRoleArn", "IAM is not rehearsed: secrets are read with the caller's credentials"),
        ):
            if task.get(field):
                not_rehearsed.append(f"task definition {task['family']}:{task['revision']} {field}: {reason}")
        groups = ((service.get("networkConfiguration") or {}).get("awsvpcConfiguration") or {}).get(
            "securityGroups"
        )
        if groups:
            not_rehearsed.append(
                f"{where} security groups {', '.join(groups)}: every replica shares one Docker network"
            )
    for store in stores.values():
        if store["kind"] == "redis" and store["tls"]:
            not_rehearsed.append(
                f"{store['variable']}: TLS to Redis at {store['host']} (the rehearsal's Redis speaks plain "
                "TCP with the same AUTH token; the containers get redis:// for rediss://)"
            )
    return {
        "cluster": cluster,
        "network": network,
        "services": services,
        "datastores": sorted(stores.values(), key=lambda s: (s["kind"], s["host"])),
        "not_rehearsed": not_rehearsed,
    }


def summary(plan: Mapping[str, Any]) -> list[str]:
    """What the plan runs, one line per container and data store, without secret values."""
    lines = []
    for service in plan["services"]:
        for spec in service["replicas"]:
            names = ", ".join(spec["secret_env"]) or "none"
            aliases = ", ".join(service["aliases"]) or "none"
            lines.append(
                f"{spec['name']}: {spec['image']} ({service['task_definition']}), "
                f"secrets {names}, aliases {aliases}"
            )
    for store in plan["datastores"]:
        lines.append(f"{store['kind']} at {store['host']}:{store['port']} for {store['variable']}")
    return lines
