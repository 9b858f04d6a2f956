"""A new task definition revision rolled onto the rehearsal's replicas as an ECS rolling update does.

`rollout` compares the plan (ecs_rehearsal.translate) with the replicas that run on the Docker
engine (their labels name the service, the task definition revision and the replica's slot) and
returns the steps that replace every outdated replica without dropping a request:

- `start`: run the new replicas, named `<service>-<slot>-r<revision>` beside the old ones;
- `configure`: write an HAProxy configuration and reload HAProxy gracefully; new replicas are
  listed with weight 0 (health-checked, no traffic);
- `admit`: mark them down and wait until they pass the target group's health check
  (`HealthyThresholdCount` checks in a row, at its interval, path and matcher), then give them
  their weight: traffic only reaches a replica that passed;
- `drain`: the old replicas take no new request; wait until they hold no session or the target
  group's deregistration delay has passed;
- `stop`: stop the old replicas with their task definition's stop timeout, then remove them.

How many replicas are replaced at once follows the service's deploymentConfiguration, as on
ECS: up to maximumPercent of the desired count may run during the update (new ones started
before old ones stop), and down to minimumHealthyPercent may be left while old ones stop first.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping
from typing import Any

from ansible_collections.tengen.ops.plugins.module_utils.alb_proxy import _name, proxy_config
from ansible_collections.tengen.ops.plugins.module_utils.ecs_rehearsal import RehearsalError

SERVICE_LABEL = "tengen.rehearsal.service"
TASK_LABEL = "tengen.rehearsal.task_definition"
SLOT_LABEL = "tengen.rehearsal.slot"


def running_replicas(containers: list[Mapping[str, Any]], prefix: str) -> list[dict[str, Any]]:
    """The rehearsal's replicas among docker_host_info's containers (verbose output).

    Each as {name, service, task_definition, slot}; a replica started before slots were labelled
    takes the slot its name ends with.
    """
    out = []
    for container in containers:
        labels = container.get("Labels") or {}
        names = [n.lstrip("/") for n in container.get("Names") or []]
        if SERVICE_LABEL not in labels or not names or not names[0].startswith(prefix):
            continue
        slot = labels.get(SLOT_LABEL) or (re.search(r"-(\d+)(?:-r\d+)?$", names[0]) or [None, "0"])[1]
        out.append(
            {
                "name": names[0],
                "service": labels[SERVICE_LABEL],
                "task_definition": labels.get(TASK_LABEL, ""),
                "slot": int(slot),
            }
        )
    return sorted(out, key=lambda r: (r["service"], r["slot"], r["name"]))


def renamed(spec: Mapping[str, Any], name: str) -> dict[str, Any]:
    """A replica's parameters under another container name (its scratch volumes follow the name)."""
    out = copy.deepcopy(dict(spec))
    old = spec["name"]
    out["name"] = name
    for mount in out.get("mounts") or []:
        if mount.get("type") == "volume" and mount["source"].startswith(f"{old}-"):
            mount["source"] = name + mount["source"][len(old) :]
    return out


def batch_sizes(desired: int, minimum_percent: int, maximum_percent: int, where: str) -> tuple[int, int]:
    """(old replicas stopped before new ones start, new replicas started before old ones stop) per wave.

    ECS keeps at least ceil(desired * minimumHealthyPercent / 100) healthy tasks and runs at most
    floor(desired * maximumPercent / 100) tasks.
    """
    floor_ = math.ceil(desired * minimum_percent / 100)
    ceiling = math.floor(desired * maximum_percent / 100)
    if ceiling < desired:
        raise RehearsalError(f"{where}: maximumPercent {maximum_percent} is below 100")
    stop_first, surge = max(desired - floor_, 0), ceiling - desired
    if stop_first + surge == 0:
        raise RehearsalError(
            f"{where}: minimumHealthyPercent {minimum_percent} and maximumPercent {maximum_percent} "
            "leave no room to replace a task"
        )
    return stop_first, surge


def _servers(service: Mapping[str, Any], names: list[str]) -> list[str]:
    """`backend/server` (as HAProxy's runtime API names it) of each named replica, per target group."""
    return [
        f"{_name(target['target_group'])}/{_name(name)}" for target in service["targets"] for name in names
    ]


def _replacements(service: dict[str, Any], running: list[Mapping[str, Any]]) -> list[tuple[dict, list[str]]]:
    """Name the service's replicas after what runs; return (new replica, old names) per outdated slot.

    A slot whose replica runs the wanted revision keeps it; an outdated one gets a new replica
    named `<name>-r<revision>`; an empty one is started under the plan's name.
    """
    wanted = service["task_definition"]
    final, replace = [], []
    for slot, spec in enumerate(service["replicas"], start=1):
        here = [r for r in running if r["service"] == service["name"] and r["slot"] == slot]
        current = [r["name"] for r in here if r["task_definition"] == wanted]
        outdated = [r["name"] for r in here if r["task_definition"] != wanted]
        if current:
            spec = renamed(spec, current[0])
        elif outdated:
            spec = renamed(spec, f"{spec['name']}-r{wanted.rsplit(':', 1)[-1]}")
            replace.append((spec, outdated))
        spec["labels"][SLOT_LABEL] = str(slot)
        final.append(spec)
    service["replicas"] = final
    return replace


def rollout(
    snapshot: Mapping[str, Any],
    plan: Mapping[str, Any],
    running: list[Mapping[str, Any]],
    *,
    listener_ports: Mapping[int, int],
    bind_address: str = "0.0.0.0",
    proxy_running: bool = True,
) -> dict[str, Any]:
    """The plan with its replicas named after what runs, and the steps that roll the outdated ones."""
    plan = copy.deepcopy(dict(plan))
    names = {tg["TargetGroupArn"]: tg["TargetGroupName"] for tg in snapshot["target_groups"]}
    for service in plan["services"]:
        for target in service["targets"]:
            target["target_group"] = names.get(target["target_group_arn"], target["target_group_arn"])
    replacements = {service["name"]: _replacements(service, running) for service in plan["services"]}
    delays = {
        group["name"]: group["deregistration_delay"]
        for group in proxy_config(snapshot, plan, listener_ports)["target_groups"]
    }
    # What HAProxy lists for each service at each step, by slot: the old replicas until replaced.
    live: dict[str, dict[str, int]] = {}
    for service in plan["services"]:
        old = {new["name"]: olds for new, olds in replacements[service["name"]]}
        live[service["name"]] = {
            name: slot
            for slot, spec in enumerate(service["replicas"], start=1)
            for name in old.get(spec["name"], [spec["name"]])
        }
    steps: list[dict[str, Any]] = []

    def configure(rolled: str, standby: frozenset[str] = frozenset()) -> None:
        stage = copy.deepcopy(plan)
        for service in stage["services"]:
            listed = live[service["name"]]
            service["replicas"] = [{"name": n} for n in sorted(listed, key=lambda n: (listed[n], n))]
        proxy = proxy_config(snapshot, stage, listener_ports, bind_address=bind_address, standby=standby)
        steps.append(
            {"kind": "configure", "service": rolled, "config": proxy["config"], "servers": proxy["servers"]}
        )

    for service in plan["services"]:
        name, replace = service["name"], replacements[service["name"]]
        if not replace:
            continue
        balanced = bool(service["targets"]) and proxy_running
        delay = max(delays[t["target_group"]] for t in service["targets"]) if service["targets"] else 0
        stop_first, surge = batch_sizes(
            service["desired_count"],
            service["minimum_healthy_percent"],
            service["maximum_percent"],
            f"service {name} deploymentConfiguration",
        )
        size = stop_first + surge
        for start in range(0, len(replace), size):
            batch = replace[start : start + size]
            first = [n for _, olds in batch[:stop_first] for n in olds]
            later = [n for _, olds in batch[stop_first:] for n in olds]
            new = [spec for spec, _ in batch]

            # ECS order: old tasks beyond minimumHealthyPercent go first, then the new ones start,
            # then the rest of the old ones go once the new ones are healthy.
            for kind, olds in (("retire", first), ("start", []), ("retire", later)):
                if kind == "start":
                    steps.append({"kind": "start", "service": name, "replicas": new})
                    live[name].update({s["name"]: int(s["labels"][SLOT_LABEL]) for s in new})
                    if balanced:
                        configure(name, frozenset(s["name"] for s in new))
                        admitted = _servers(service, [s["name"] for s in new])
                        steps.append({"kind": "admit", "service": name, "servers": admitted})
                    continue
                if not olds:
                    continue
                if balanced:
                    drained = _servers(service, olds)
                    steps.append({"kind": "drain", "service": name, "servers": drained, "timeout": delay})
                for old in olds:
                    live[name].pop(old)
                if balanced:
                    configure(name)
                # Stopped with the stop timeout its own task definition gave the container.
                steps.append({"kind": "stop", "service": name, "replicas": olds})
    return {"plan": plan, "steps": steps}
