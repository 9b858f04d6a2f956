"""A new task definition revision rolled as ECS rolls it, on moto's recorded answers after all.yml.

The recorded snapshot (tests/unit/data/rehearsal/moto-snapshot.json) is what runs; `revised`
registers revision 2 of services' task definitions on top of it (a new image tag), as all.yml
does when scale_out_image_tag changes. What runs is given as docker_host_info lists it.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.tengen.ops.plugins.module_utils.alb_proxy import proxy_config
from ansible_collections.tengen.ops.plugins.module_utils.ecs_rehearsal import RehearsalError
from ansible_collections.tengen.ops.plugins.module_utils.ecs_rollout import (
    batch_sizes,
    renamed,
    rollout,
    running_replicas,
)

from tests.unit.plugins.module_utils.test_ecs_rehearsal import plan_of, recorded

PORTS = {80: 18080, 443: 18443}
PREFIX = "tengen-staging-"
BACKEND = "tengen-staging-backend"


def revised(
    snapshot: dict[str, Any], *services: str, deployment: dict[str, int] | None = None
) -> dict[str, Any]:
    snap = copy.deepcopy(snapshot)
    for service in snap["services"]:
        if service["serviceName"] not in services:
            continue
        old = service["taskDefinition"]
        new = f"{old.rsplit(':', 1)[0]}:2"
        task = copy.deepcopy(snap["task_definitions"][old])
        task.update({"revision": 2, "taskDefinitionArn": new})
        container = task["containerDefinitions"][0]
        container["image"] = container["image"].replace(":0.1.0", ":0.2.0")
        snap["task_definitions"][new] = task
        service["taskDefinition"] = new
        if deployment is not None:
            service["deploymentConfiguration"] = deployment
    return snap


def as_docker_lists(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """The plan's replicas as docker_host_info (verbose) lists running containers."""
    return [
        {"Names": [f"/{spec['name']}"], "Labels": spec["labels"], "State": "running"}
        for service in plan["services"]
        for spec in service["replicas"]
    ]


def roll(snapshot: dict[str, Any], running: list[dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
    plan = plan_of(snapshot)
    return rollout(snapshot, plan, running_replicas(running, PREFIX), listener_ports=PORTS, **kwargs)


def deployed() -> list[dict[str, Any]]:
    """What the first rehearsal of the recorded stack runs."""
    return as_docker_lists(roll(recorded(), [])["plan"])


def outline(steps: list[dict[str, Any]]) -> list[tuple[str, str, list[str]]]:
    """(kind, service, what) per step: replica names, or backend/server ids."""
    out = []
    for step in steps:
        what = step.get("servers") or step.get("replicas") or []
        out.append((step["kind"], step["service"], [
            w["name"] if isinstance(w, dict) else w for w in what
        ]))  # fmt: skip
    return out


def servers_of(config: str) -> list[str]:
    return [line.strip() for line in config.splitlines() if line.strip().startswith("server ")]


def test_a_first_rehearsal_starts_every_slot_under_its_plain_name_with_no_rolling_step() -> None:
    result = roll(recorded(), [])
    assert result["steps"] == []
    names = [
        (s["name"], s["labels"]["tengen.rehearsal.slot"])
        for v in result["plan"]["services"]
        for s in v["replicas"]
    ]
    assert names == [
        ("tengen-staging-backend-1", "1"),
        ("tengen-staging-backend-2", "2"),
        ("tengen-staging-engine-1", "1"),
        ("tengen-staging-web-1", "1"),
    ]


def test_replicas_of_the_current_revision_are_kept_whatever_their_name() -> None:
    snap = revised(recorded(), "backend")
    rolled_once = roll(snap, deployed())["plan"]
    result = roll(snap, as_docker_lists(rolled_once))
    assert result["steps"] == []
    backend = next(s for s in result["plan"]["services"] if s["name"] == "backend")
    assert [s["name"] for s in backend["replicas"]] == [f"{BACKEND}-1-r2", f"{BACKEND}-2-r2"]


def test_a_new_revision_starts_new_replicas_admits_them_once_healthy_then_drains_and_stops_the_old() -> None:
    # maximumPercent 200 (the ECS default, and what the track sets): both new replicas at once.
    result = roll(revised(recorded(), "backend", "engine"), deployed())
    old, new = (
        [f"{BACKEND}/{BACKEND}-1", f"{BACKEND}/{BACKEND}-2"],
        [f"{BACKEND}/{BACKEND}-1-r2", f"{BACKEND}/{BACKEND}-2-r2"],
    )
    web = "tengen-staging-web/tengen-staging-web-1"
    assert outline(result["steps"]) == [
        ("start", "backend", [f"{BACKEND}-1-r2", f"{BACKEND}-2-r2"]),
        ("configure", "backend", [old[0], new[0], old[1], new[1], web]),
        ("admit", "backend", new),
        ("drain", "backend", old),
        ("configure", "backend", [*new, web]),
        ("stop", "backend", [f"{BACKEND}-1", f"{BACKEND}-2"]),
        # The engine has no target group: its Cloud Map name is an alias of both for a moment.
        ("start", "engine", ["tengen-staging-engine-1-r2"]),
        ("stop", "engine", ["tengen-staging-engine-1"]),
    ]
    start, with_new, _, drain, without_old, _ = result["steps"][:6]
    # The new replicas are listed with weight 0 until admitted; the old ones keep their weight.
    assert servers_of(with_new["config"])[:2] == [
        f"server {BACKEND}-1 {BACKEND}-1:8000",
        f"server {BACKEND}-1-r2 {BACKEND}-1-r2:8000 weight 0",
    ]
    assert "weight 0" not in without_old["config"]
    # The target group's deregistration delay bounds the drain.
    assert drain["timeout"] == 30
    # A new replica is the old one's task under the new image, its slot and revision in its name.
    spec = start["replicas"][0]
    assert spec["image"] == "127.0.0.1:5000/tengen-staging/backend:0.2.0"
    assert spec["labels"]["tengen.rehearsal.task_definition"] == "tengen-staging-backend:2"
    assert spec["labels"]["tengen.rehearsal.slot"] == "1"
    # The run ends with the configuration of the last step: no reload after the rolling update.
    final = proxy_config(revised(recorded(), "backend", "engine"), result["plan"], PORTS)
    assert final["config"] == without_old["config"]


def test_minimum_healthy_percent_below_100_stops_an_old_replica_before_its_replacement_starts() -> None:
    snap = revised(recorded(), "backend", deployment={"minimumHealthyPercent": 50, "maximumPercent": 100})
    result = roll(snap, deployed())
    backend = [step for step in outline(result["steps"]) if step[1] == "backend" and step[0] != "configure"]
    assert [(kind, what) for kind, _, what in backend] == [
        ("drain", [f"{BACKEND}/{BACKEND}-1"]),
        ("stop", [f"{BACKEND}-1"]),
        ("start", [f"{BACKEND}-1-r2"]),
        ("admit", [f"{BACKEND}/{BACKEND}-1-r2"]),
        ("drain", [f"{BACKEND}/{BACKEND}-2"]),
        ("stop", [f"{BACKEND}-2"]),
        ("start", [f"{BACKEND}-2-r2"]),
        ("admit", [f"{BACKEND}/{BACKEND}-2-r2"]),
    ]
    # One replica always serves: the first configuration lists only the second old one.
    first = next(step for step in result["steps"] if step["kind"] == "configure")
    assert first["servers"] == [f"{BACKEND}/{BACKEND}-2", "tengen-staging-web/tengen-staging-web-1"]


def test_maximum_percent_150_of_two_replaces_one_replica_at_a_time() -> None:
    snap = revised(recorded(), "backend", deployment={"minimumHealthyPercent": 100, "maximumPercent": 150})
    kinds = [
        (kind, what)
        for kind, service, what in outline(roll(snap, deployed())["steps"])
        if kind in ("start", "stop")
    ]
    assert kinds == [
        ("start", [f"{BACKEND}-1-r2"]),
        ("stop", [f"{BACKEND}-1"]),
        ("start", [f"{BACKEND}-2-r2"]),
        ("stop", [f"{BACKEND}-2"]),
    ]


@pytest.mark.parametrize(
    ("minimum", "maximum", "message"),
    [(100, 100, "leave no room to replace a task"), (0, 50, "maximumPercent 50 is below 100")],
)
def test_a_deployment_configuration_ecs_could_not_roll_is_refused_by_name(
    minimum: int, maximum: int, message: str
) -> None:
    snap = revised(
        recorded(), "web", deployment={"minimumHealthyPercent": minimum, "maximumPercent": maximum}
    )
    with pytest.raises(RehearsalError, match=f"service web deploymentConfiguration: .*{message}"):
        roll(snap, deployed())


def test_without_the_stand_in_load_balancer_replicas_are_only_started_and_stopped() -> None:
    result = roll(revised(recorded(), "web"), deployed(), proxy_running=False)
    assert outline(result["steps"]) == [
        ("start", "web", ["tengen-staging-web-1-r2"]),
        ("stop", "web", ["tengen-staging-web-1"]),
    ]


def test_running_replicas_are_read_from_their_labels_or_names() -> None:
    listed = [
        {"Names": ["/tengen-staging-web-1-r3"], "Labels": {"tengen.rehearsal.service": "web",
         "tengen.rehearsal.task_definition": "tengen-staging-web:3", "tengen.rehearsal.slot": "1"}},
        # Started before slots were labelled: the slot is the name's.
        {"Names": ["/tengen-staging-backend-2"], "Labels": {"tengen.rehearsal.service": "backend",
         "tengen.rehearsal.task_definition": "tengen-staging-backend:1"}},
        {"Names": ["/other-stack-web-1"], "Labels": {"tengen.rehearsal.service": "web"}},
        {"Names": ["/tengen-staging-rehearsal-alb"], "Labels": {}},
    ]  # fmt: skip
    assert running_replicas(listed, PREFIX) == [
        {
            "name": "tengen-staging-backend-2",
            "service": "backend",
            "task_definition": "tengen-staging-backend:1",
            "slot": 2,
        },
        {
            "name": "tengen-staging-web-1-r3",
            "service": "web",
            "task_definition": "tengen-staging-web:3",
            "slot": 1,
        },
    ]


def test_a_renamed_replica_takes_its_scratch_volumes_along() -> None:
    spec = {
        "name": "s-backend-1",
        "mounts": [{"type": "volume", "source": "s-backend-1-tmp", "target": "/tmp"}],
    }
    assert renamed(spec, "s-backend-1-r2")["mounts"][0]["source"] == "s-backend-1-r2-tmp"
    assert spec["mounts"][0]["source"] == "s-backend-1-tmp"


def test_batch_sizes_follow_the_deployment_configuration() -> None:
    assert batch_sizes(2, 100, 200, "w") == (0, 2)
    assert batch_sizes(2, 50, 100, "w") == (1, 0)
    assert batch_sizes(3, 50, 150, "w") == (1, 1)
    assert batch_sizes(1, 0, 100, "w") == (1, 0)


def test_haproxy_accepts_a_configuration_with_a_replica_on_standby(tmp_path: Path) -> None:
    exe = shutil.which("haproxy") or "/usr/sbin/haproxy"
    assert Path(exe).exists(), "haproxy is missing: apt-get install haproxy (scripts/test-packages.txt)"
    step = next(
        s for s in roll(revised(recorded(), "backend"), deployed())["steps"] if s["kind"] == "configure"
    )
    config = step["config"].replace("/run/haproxy/admin.sock", str(tmp_path / "admin.sock"))
    (tmp_path / "haproxy.cfg").write_text(config)
    check = subprocess.run([exe, "-c", "-f", str(tmp_path / "haproxy.cfg")], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
