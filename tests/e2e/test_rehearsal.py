"""The rehearsal: the scale-out track against moto_server, then what moto says AWS runs, on the sandbox VM.

images.yml pushes the service images to Debian's docker-registry on a loopback port (standing
in for ECR), all.yml builds the stack in moto_server, and rehearse.yml runs on the sandbox VM's
Docker engine every ECS service's replicas as their task definitions say, PostgreSQL and Redis
where the stack's secret points, and HAProxy configured from the ALB's listeners and target
groups. The VM reaches the registry, and the test reaches the stand-in ALB, through one SSH
connection's forwards (-R for the registry, -L for the ALB's HTTPS listener and its statistics).

Each target group is health-checked on its own service's path (web /healthz, backend /readyz), as
the track sets them.

Then failures under the shared player load (tests/player_load.py) through the stand-in ALB: a
backend replica killed (only what was in flight on it fails, no acknowledged move is lost, its
watchers reconnect, Docker restarts it and it passes its health check again), and the engine
killed, then stopped and started (AI moves resume, no backend leaves the ALB meanwhile).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import boto3
import pytest

from tests.conftest import REPO, free_port
from tests.e2e.sandbox import Sandbox
from tests.player_load import PlayerLoad
from tests.scale_out_run import Run, run_playbook
from tests.unit.conftest import COLLECTIONS

sys.path.insert(0, str(COLLECTIONS))
from ansible_collections.tengen.ops.plugins.filter.rehearsal import haproxy_servers  # noqa: E402
from ansible_collections.tengen.ops.plugins.lookup.service_images import service_images  # noqa: E402

STACK = "tengen-rehearsal"
TAG = "0.1.0-rehearsal"
REGION = "eu-west-1"
BASE_IMAGE = "tengen/debian:trixie-slim"
# Service -> (build context, Dockerfile); GNU Go stands in for KataGo in the engine image.
SOURCES = {
    "backend": ("files/app", "Dockerfile"),
    "engine": ("files/engine", "Dockerfile.gnugo"),
    "web": ("files/web", "Dockerfile"),
}
NETWORK = f"{STACK}-rehearsal"


@dataclass
class Deployed:
    sandbox: Sandbox
    endpoint: str
    registry: str
    alb: str  # http://127.0.0.1:<port> -> the stand-in ALB's HTTPS listener (served as HTTP)
    stats: str  # its statistics page
    timings: dict[str, float] = field(default_factory=dict)
    runs: dict[str, Run] = field(default_factory=dict)

    def rehearse(self, **extra: object) -> Run:
        return run_playbook(
            "rehearse.yml",
            self.endpoint,
            {"scale_out_stack": STACK, "aws_rehearsal_registry": self.registry, **extra},
            inventories=(self.sandbox.inventory,),
        )

    def vm(self, *cmd: str) -> str:
        run = self.sandbox.exec(*cmd, check=False)
        assert run.returncode == 0, f"{' '.join(cmd)}:\n{run.stdout.decode()}\n{run.stderr.decode()}"
        return run.stdout.decode().strip()

    def rehearsal_containers(self) -> list[str]:
        names = self.vm("docker", "ps", "-a", "--format", "{{.Names}}").split()
        return sorted(n for n in names if n.startswith(f"{STACK}-"))


def remove_rehearsal(run: Callable[..., object]) -> None:
    """Remove every container, volume and the network of the rehearsal; `run` runs a command on the VM."""
    run(
        "sh", "-c",
        f"docker ps -aq --filter name=^{STACK}- | xargs -r docker rm -f -v >/dev/null; "
        f"docker volume ls -q --filter name=^{STACK}- | xargs -r docker volume rm >/dev/null; "
        f"docker network rm {NETWORK} >/dev/null 2>&1; true",
    )  # fmt: skip


def aws(endpoint: str, service: str):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture(scope="module")
def deployed(sandbox: Sandbox, registry: str, moto_server: str) -> Iterator[Deployed]:
    timings: dict[str, float] = {}
    started = time.monotonic()
    port = registry.rsplit(":", 1)[1]
    alb_port, stats_port = free_port(), free_port()
    ssh = sandbox.ssh_args("deploy")
    tunnel = subprocess.Popen(
        [*ssh[:-1], "-N", "-o", "ExitOnForwardFailure=yes", "-R", f"127.0.0.1:{port}:127.0.0.1:{port}",
         "-L", f"127.0.0.1:{alb_port}:127.0.0.1:18443", "-L", f"127.0.0.1:{stats_port}:127.0.0.1:18404",
         ssh[-1]],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while sandbox.exec("curl", "-sf", f"http://127.0.0.1:{port}/v2/", check=False).returncode != 0:
            assert tunnel.poll() is None, tunnel.stderr.read().decode()
            assert time.monotonic() < deadline, "the VM does not reach the registry through the SSH tunnel"
            time.sleep(0.5)
        # The service images, built from the repository (Docker's cache makes this quick after
        # site.yml) and named as the catalogue names them, so images.yml pushes them as they are;
        # the engine is GNU Go's image under the KataGo image's name (KataGo cannot be built here).
        catalogue = service_images(str(REPO / "files"))
        for name, (context, dockerfile) in SOURCES.items():
            subprocess.run(
                ["docker", "build", "-q", "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "-f",
                 str(REPO / context / dockerfile), "-t", catalogue[name]["image"], str(REPO / context)],
                check=True, capture_output=True,
            )  # fmt: skip
        timings["images built"] = time.monotonic() - started
        pushed = run_playbook(
            "images.yml",
            moto_server,
            {"aws_images_registry": registry, "scale_out_image_tag": TAG, "scale_out_stack": STACK},
            moto=False,
        )  # fmt: skip
        assert pushed.rc == 0, pushed.output[-3000:]
        timings["images pushed"] = time.monotonic() - started
        cert = aws(moto_server, "acm").request_certificate(DomainName="rehearsal.example.net")[
            "CertificateArn"
        ]
        aws(moto_server, "route53").create_hosted_zone(Name="example.net", CallerReference="tengen-rehearsal")
        track = run_playbook(
            "all.yml",
            moto_server,
            {"scale_out_certificate_arn": cert, "scale_out_stack": STACK, "scale_out_image_tag": TAG,
             "scale_out_domain": "rehearsal.example.net", "scale_out_hosted_zone": "example.net"},
        )  # fmt: skip
        assert track.rc == 0, track.output[-3000:]
        timings["all.yml"] = time.monotonic() - started
        web = aws(moto_server, "elbv2").describe_target_groups(Names=[f"{STACK}-web"])["TargetGroups"][0]
        assert web["HealthCheckPath"] == "/healthz"
        yield Deployed(
            sandbox,
            moto_server,
            registry,
            f"http://127.0.0.1:{alb_port}",
            f"http://127.0.0.1:{stats_port}",
            timings,
        )
    finally:
        tunnel.terminate()
        tunnel.wait(timeout=10)
        # Kept for benchmarks/rehearsal.py, which removes it when done.
        if os.environ.get("TENGEN_KEEP_REHEARSAL") != "1":
            remove_rehearsal(lambda *cmd: sandbox.exec(*cmd, check=False))
        print(f"rehearsal timings (s since start): {json.dumps({k: round(v) for k, v in timings.items()})}")


def test_bad_input_stops_the_rehearsal_before_anything_starts(deployed: Deployed) -> None:
    missing_stack = deployed.rehearse(scale_out_stack="never-deployed")
    assert missing_stack.rc != 0
    assert missing_stack.failed_tasks == ["aws_rehearsal : plan | Stop when the stack cannot be rehearsed"]
    assert "no active ECS cluster 'never-deployed'" in missing_stack.output
    assert "run playbooks/scale-out/all.yml first" in missing_stack.output
    # The ECR host mapped to a path of the registry that holds nothing: every image is missing.
    account = aws(deployed.endpoint, "sts").get_caller_identity()["Account"]
    ecr = f"{account}.dkr.ecr.{REGION}.amazonaws.com"
    elsewhere = deployed.rehearse(aws_rehearsal_registry_map={ecr: f"{deployed.registry}/elsewhere"})
    assert elsewhere.rc != 0
    assert elsewhere.failed_tasks == ["aws_rehearsal : check | Stop unless every image is in the registry"]
    assert f"{deployed.registry}/elsewhere/{STACK}/backend:{TAG}" in elsewhere.output
    assert deployed.rehearsal_containers() == []


@pytest.fixture(scope="module")
def rehearsed(deployed: Deployed) -> Deployed:
    started = time.monotonic()
    run = deployed.rehearse()
    deployed.timings["rehearse.yml"] = time.monotonic() - started
    assert run.rc == 0, run.output[-5000:]
    deployed.runs["first"] = run
    return deployed


def test_every_replica_passes_its_target_groups_health_check(rehearsed: Deployed) -> None:
    with urllib.request.urlopen(f"{rehearsed.stats}/stats;csv", timeout=10) as resp:
        servers = haproxy_servers(resp.read().decode())
    health = {(s["backend"], s["server"]): s["status"] for s in servers}
    assert health == {
        (f"{STACK}-backend", f"{STACK}-backend-1"): "UP",
        (f"{STACK}-backend", f"{STACK}-backend-2"): "UP",
        (f"{STACK}-web", f"{STACK}-web-1"): "UP",
    }
    # Routed as the listener rules say: /api to the backend, the rest to the web client.
    with urllib.request.urlopen(f"{rehearsed.alb}/", timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("text/html")
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{rehearsed.alb}/api/games/0000000000000000", timeout=10)
    assert missing.value.code == 404
    assert missing.value.headers["Content-Type"].startswith("application/json")


def test_each_replica_runs_its_task_definition_with_the_secrets_resolved(rehearsed: Deployed) -> None:
    inspect = json.loads(rehearsed.vm("docker", "inspect", f"{STACK}-backend-2"))[0]
    config, host = inspect["Config"], inspect["HostConfig"]
    assert config["Image"] == f"{rehearsed.registry}/{STACK}/backend:{TAG}"
    env = dict(item.split("=", 1) for item in config["Env"])
    secret = json.loads(
        aws(rehearsed.endpoint, "secretsmanager").get_secret_value(SecretId=f"{STACK}/app")["SecretString"]
    )
    assert env["DATABASE_URL"] == secret["DATABASE_URL"]
    assert env["REDIS_URL"] == secret["REDIS_URL"].replace("rediss://", "redis://", 1)
    assert env["TENGEN_ENGINE_URL"] == f"http://engine.{STACK}.internal:8001"
    assert (host["NanoCpus"], host["Memory"]) == (500_000_000, 1024 * 1024 * 1024)  # 512 CPU units, 1024 MiB
    assert config["StopTimeout"] == 30 and host["LogConfig"]["Type"] == "local"
    assert config["Healthcheck"]["Test"] == ["NONE"]
    # The engine's Cloud Map name resolves, on the network, to the engine's replica.
    engine_ip = rehearsed.vm(
        "docker",
        "inspect",
        "-f",
        f'{{{{(index .NetworkSettings.Networks "{NETWORK}").IPAddress}}}}',
        f"{STACK}-engine-1",
    )
    resolved = rehearsed.vm(
        "docker", "exec", f"{STACK}-backend-1", "python3", "-c",
        f"import socket; print(socket.gethostbyname('engine.{STACK}.internal'))",
    )  # fmt: skip
    assert resolved == engine_ip


# Runs inside a backend replica (its image has aiohttp): a game against the AI created and played
# through one replica, watched over a WebSocket held on the other.
ACROSS_REPLICAS = r"""
import asyncio, json, sys
import aiohttp
one, other = sys.argv[1:3]
async def main():
    async with aiohttp.ClientSession() as s:
        async with s.post(f"http://{one}:8000/api/games", json={"size": 9, "opponent": "ai"}) as r:
            created = await r.json()
        game, token = created["game"]["id"], created["tokens"]["B"]
        async with s.ws_connect(f"http://{other}:8000/ws/games/{game}") as ws:
            first = json.loads((await ws.receive(timeout=10)).data)["game"]["moves"]
            move = {"move": "E5", "token": token}
            async with s.post(f"http://{one}:8000/api/games/{game}/moves", json=move) as r:
                assert r.status == 200, await r.text()
            seen = []
            while not seen or len(seen[-1]) < 2:
                data = json.loads((await ws.receive(timeout=60)).data)
                if data.get("type") == "game":
                    seen.append(data["game"]["moves"])
    print(json.dumps({"first": first, "seen": seen}))
asyncio.run(main())
"""


def test_moves_through_one_replica_reach_a_websocket_on_the_other_through_redis(rehearsed: Deployed) -> None:
    one, other = f"{STACK}-backend-1", f"{STACK}-backend-2"
    run = rehearsed.sandbox.exec(
        "docker", "exec", "-i", one, "python3", "-", one, other, input=ACROSS_REPLICAS.encode(), check=False
    )
    assert run.returncode == 0, run.stderr.decode()[-3000:]
    result = json.loads(run.stdout.decode().strip().splitlines()[-1])
    assert result["first"] == []
    assert result["seen"][0] == [["B", "E5"]]  # the move made on one replica, pushed on the other
    assert result["seen"][-1][0] == ["B", "E5"] and result["seen"][-1][1][0] == "W"  # the AI's reply too


# -- Failures: a backend replica and the engine killed under load. (That a second run changes
# nothing is asserted after the rolling update, at the end.)


def replicas_of(deployed: Deployed, service: str) -> list[str]:
    """An ECS service's replica containers, found by the label the rehearsal gives them."""
    label = f"label=tengen.rehearsal.service={service}"
    names = deployed.vm("docker", "ps", "-a", "--format", "{{.Names}}", "--filter", label)
    return sorted(names.split())


def server_health(deployed: Deployed) -> dict[str, str]:
    """'target group/server' -> the status the stand-in ALB gives it (UP, DOWN, MAINT...)."""
    with urllib.request.urlopen(f"{deployed.stats}/stats;csv", timeout=10) as resp:
        return {f"{s['backend']}/{s['server']}": s["status"] for s in haproxy_servers(resp.read().decode())}


def life(deployed: Deployed, container: str) -> tuple[int, str, int]:
    """(restart count, start time, main process id) of a container."""
    count, started, pid = deployed.vm(
        "docker", "inspect", "-f", "{{.RestartCount}} {{.State.StartedAt}} {{.State.Pid}}", container
    ).split()
    return int(count), started, int(pid)


def crash(deployed: Deployed, container: str) -> None:
    """SIGKILL to the container's process, as the kernel's OOM killer or a fault would end it.

    Not `docker kill`: Docker takes that for an operator's stop and then ignores the restart
    policy (ECS would still replace the task).
    """
    deployed.vm("kill", "-KILL", str(life(deployed, container)[2]))


def metric(deployed: Deployed, container: str, name: str, **labels: str) -> float | None:
    """The sum of a metric's samples (with these labels) on one backend replica, read inside it;
    None while the replica does not answer."""
    read = "import urllib.request as u; print(u.urlopen('http://127.0.0.1:8000/metrics').read().decode())"
    run = deployed.sandbox.exec("docker", "exec", container, "python3", "-c", read, check=False)
    if run.returncode != 0:
        return None
    total = 0.0
    for found in re.finditer(rf"^{name}(?:{{(.*)}})? (\S+)$", run.stdout.decode(), re.M):
        if all(f'{k}="{v}"' in (found.group(1) or "") for k, v in labels.items()):
            total += float(found.group(2))
    return total


def wait_for(what: str, condition, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        time.sleep(0.5)


def alb_counters(deployed: Deployed) -> dict[str, dict[str, int]]:
    """'target group/server' -> the stand-in ALB's counters: exchanges with it that broke off
    (eresp), requests that could not connect to it in the end (econ), and requests sent to
    another target after it refused their connection (wredis)."""
    with urllib.request.urlopen(f"{deployed.stats}/stats;csv", timeout=10) as resp:
        rows = csv.DictReader(io.StringIO(resp.read().decode().lstrip("# ")))
        return {
            f"{row['pxname']}/{row['svname']}": {k: int(row[k] or 0) for k in ("eresp", "econ", "wredis")}
            for row in rows
        }


def test_a_backend_replica_killed_under_load_loses_no_acknowledged_move(rehearsed: Deployed) -> None:
    backends = replicas_of(rehearsed, "backend")
    assert len(backends) == 2, backends
    victim, survivor = backends
    before = life(rehearsed, victim)
    counted = alb_counters(rehearsed)
    with PlayerLoad(rehearsed.alb) as load:
        # Players on both replicas, WebSockets held on the one to be killed.
        wait_for("moves on both replicas and WebSockets on each", lambda: all(
            (metric(rehearsed, name, "tengen_moves_total") or 0) > 0
            and (metric(rehearsed, name, "tengen_websockets_open") or 0) > 0
            for name in backends
        ))  # fmt: skip
        # What will be in flight on it: its WebSockets (those counted, and any still connecting
        # or of a game begun since), and at most one request per player.
        games = len(load.games)
        connecting = sum(1 for game in load.games if game.seen_version < 0)
        sockets_on_victim = metric(rehearsed, victim, "tengen_websockets_open") + connecting
        crash(rehearsed, victim)
        moves_at_kill = load.report.moves
        sockets_on_victim += len(load.games) - games
        # Docker starts it again (restart policy); until it listens, the other replica serves.
        wait_for("the killed replica restarted", lambda: life(rehearsed, victim)[0] > before[0])
        wait_for(
            "the restarted replica listening",
            lambda: metric(rehearsed, victim, "tengen_moves_total") is not None,
        )
        moves_while_away = load.report.moves - moves_at_kill
        # Back once its new process passed the target group's health check (its counters start
        # from zero) and the ALB has it UP, then serving players again.
        wait_for("the restarted replica passing its health check", lambda: (
            (metric(rehearsed, victim, "tengen_http_requests_total", route="/readyz", status="200") or 0) > 0
            and server_health(rehearsed)[f"{STACK}-backend/{victim}"] == "UP"
        ))  # fmt: skip
        wait_for("the restarted replica serving moves", lambda: (
            (metric(rehearsed, victim, "tengen_moves_total") or 0) > 0
        ))  # fmt: skip
    report = load.report
    counts = alb_counters(rehearsed)
    delta = {
        name: {
            k: counts[f"{STACK}-backend/{name}"][k] - counted[f"{STACK}-backend/{name}"][k]
            for k in ("eresp", "econ", "wredis")
        }
        for name in backends
    }
    print(f"backend replica killed: {report.summary()}; ALB counters: {delta}; failures: {report.failures}")
    assert not report.lost, report.lost  # every acknowledged move is stored
    assert moves_while_away > 0  # the other replica served alone
    # What failed was in flight on the killed replica: a WebSocket held there fails once, and a
    # player's request broken off fails (ServerDisconnected, or 502 from the ALB), at most one
    # per player. Nothing failed on the other replica, and no request failed to connect: those
    # the restarting replica refused went to the other one.
    sockets = [f.split()[2].rstrip(":") for f in report.failures if " WebSocket " in f]
    requests = [f for f in report.failures if " WebSocket " not in f]
    assert 0 < len(sockets) <= sockets_on_victim, report.failures
    assert len(sockets) == len(set(sockets)), report.failures
    assert len(requests) <= load.humans + load.ai_players, requests
    assert not [f for f in requests if re.search(r"HTTP (?!502)\d{3}", f)], requests
    assert delta[survivor] == {"eresp": 0, "econ": 0, "wredis": 0}
    assert delta[victim]["econ"] == 0
    # The watchers that lost their WebSocket reconnected through the ALB and caught up.
    assert not report.stale, report.stale


def test_the_engine_killed_then_stopped_leaves_every_backend_up_and_ai_moves_resume(
    rehearsed: Deployed,
) -> None:
    (engine,) = replicas_of(rehearsed, "engine")
    backends = replicas_of(rehearsed, "backend")
    elbv2 = aws(rehearsed.endpoint, "elbv2")
    group = elbv2.describe_target_groups(Names=[f"{STACK}-backend"])["TargetGroups"][0]
    samples: list[dict[str, str]] = []
    sampling = threading.Event()

    def sample() -> None:  # the stand-in ALB's view of every target, all along
        while not sampling.is_set():
            samples.append(server_health(rehearsed))
            sampling.wait(0.5)

    def readyz(name: str) -> tuple[float, float]:  # health checks answered 200, and otherwise
        ok = metric(rehearsed, name, "tengen_http_requests_total", route="/readyz", status="200")
        return ok, metric(rehearsed, name, "tengen_http_requests_total", route="/readyz") - ok

    def engine_available(value: float) -> bool:
        return all(metric(rehearsed, name, "tengen_engine_available") == value for name in backends)

    sampler = threading.Thread(target=sample, daemon=True)
    # AI replies still due when the engine comes back are waited for, however long it was away.
    with PlayerLoad(rehearsed.alb, humans=1, ai_players=3, ai_timeout=300) as load:
        sampler.start()
        wait_for("AI replies", lambda: load.report.ai_replies >= 3)
        # Killed: Docker starts it again under the same name.
        before = life(rehearsed, engine)
        crash(rehearsed, engine)
        wait_for("the engine restarted", lambda: life(rehearsed, engine)[0] > before[0])
        replies = load.report.ai_replies
        wait_for("AI moves after the engine was killed", lambda: load.report.ai_replies > replies)
        # Stopped for as long as the ALB needs to take a target out on failing health checks.
        rehearsed.vm("docker", "stop", engine)
        wait_for("every backend seeing no engine", lambda: engine_available(0))
        checks = {name: readyz(name) for name in backends}
        wait_for("as many health checks of every backend as take a target out", lambda: all(
            readyz(name)[0] >= checks[name][0] + group["UnhealthyThresholdCount"] for name in backends
        ))  # fmt: skip
        failed_checks = {name: readyz(name)[1] - checks[name][1] for name in backends}
        replies = load.report.ai_replies
        rehearsed.vm("docker", "start", engine)
        wait_for("every backend seeing the engine again", lambda: engine_available(1))
        wait_for("AI moves after the engine came back", lambda: load.report.ai_replies > replies)
    sampling.set()
    sampler.join(timeout=15)
    report = load.report
    print(f"engine killed, then stopped and started: {report.summary()}; {len(samples)} ALB samples")
    assert report.clean, report.details()
    assert failed_checks == dict.fromkeys(backends, 0)
    down = [sample for sample in samples if set(sample.values()) != {"UP"}]
    assert samples and not down, down[:3]
    # The name resolves to the engine that answers now.
    address = rehearsed.vm(
        "docker", "inspect", "-f", f'{{{{(index .NetworkSettings.Networks "{NETWORK}").IPAddress}}}}', engine
    )
    resolved = rehearsed.vm(
        "docker", "exec", backends[0], "python3", "-c",
        f"import socket; print(socket.gethostbyname('engine.{STACK}.internal'))",
    )  # fmt: skip
    assert resolved == address


# -- a new task definition revision, rolled under load -------------------------------------------
ROLLED_TAG = "0.2.0-rehearsal"


def test_a_new_revision_rolls_replica_by_replica_without_failing_a_request(rehearsed: Deployed) -> None:
    """The images under a second tag, a new revision of every task definition, then rehearse.yml
    while players play through the stand-in ALB: new replicas take traffic once healthy, the old
    ones are drained and stopped, HAProxy reloads without dropping a connection."""
    from tests.player_load import PlayerLoad

    started, timings = time.monotonic(), {}
    common = {"scale_out_stack": STACK, "scale_out_image_tag": ROLLED_TAG}
    pushed = run_playbook(
        "images.yml", rehearsed.endpoint, {"aws_images_registry": rehearsed.registry, **common}, moto=False
    )
    assert pushed.rc == 0, pushed.output[-3000:]
    cert = aws(rehearsed.endpoint, "acm").list_certificates()["CertificateSummaryList"][0]["CertificateArn"]
    track = run_playbook(
        "all.yml",
        rehearsed.endpoint,
        {"scale_out_certificate_arn": cert, "scale_out_domain": "rehearsal.example.net",
         "scale_out_hosted_zone": "example.net", **common},
    )  # fmt: skip
    assert track.rc == 0, track.output[-3000:]
    ecs = aws(rehearsed.endpoint, "ecs")
    services = ecs.describe_services(cluster=STACK, services=["backend", "engine", "web"])["services"]
    assert {s["serviceName"]: s["taskDefinition"].rsplit(":", 1)[1] for s in services} == {
        "backend": "2", "engine": "2", "web": "2"
    }  # fmt: skip
    timings["new revision registered"] = time.monotonic() - started

    alb = f"{STACK}-rehearsal-alb"
    alb_started = rehearsed.vm("docker", "inspect", "-f", "{{.State.StartedAt}}", alb)
    with PlayerLoad(rehearsed.alb) as load:
        time.sleep(5)  # games and their watchers under way before the first replica changes
        rolled = rehearsed.rehearse()
        assert rolled.rc == 0, rolled.output[-5000:]
        time.sleep(5)  # and still played on the new replicas only
    report = load.report
    timings["rolled under load"] = time.monotonic() - started
    print(f"rolling update under load: {report.summary()}")
    assert report.clean, f"{report.summary()}: {report.details()}"
    assert report.moves > 0 and report.ai_replies > 0
    # The watchers held on the old backends were told 1012 when those stopped, and reconnected.
    assert report.reconnects > 0

    names = rehearsed.rehearsal_containers()
    replicas = [n for n in names if not n.startswith(f"{STACK}-rehearsal-")]  # not the stand-ins
    assert replicas == [
        f"{STACK}-backend-1-r2", f"{STACK}-backend-2-r2", f"{STACK}-engine-1-r2", f"{STACK}-web-1-r2"
    ]  # fmt: skip
    for name in replicas:
        image = rehearsed.vm("docker", "inspect", "-f", "{{.Config.Image}}", name)
        assert image.endswith(f":{ROLLED_TAG}"), (name, image)
    with urllib.request.urlopen(f"{rehearsed.stats}/stats;csv", timeout=10) as resp:
        health = {(s["backend"], s["server"]): s["status"] for s in haproxy_servers(resp.read().decode())}
    assert health == {
        (f"{STACK}-backend", f"{STACK}-backend-1-r2"): "UP",
        (f"{STACK}-backend", f"{STACK}-backend-2-r2"): "UP",
        (f"{STACK}-web", f"{STACK}-web-1-r2"): "UP",
    }
    # HAProxy was reloaded, never restarted.
    assert rehearsed.vm("docker", "inspect", "-f", "{{.State.StartedAt}}", alb) == alb_started

    again = rehearsed.rehearse()
    assert again.rc == 0, again.output[-5000:]
    assert again.changed == 0, again.changed_tasks
    timings["second run unchanged"] = time.monotonic() - started
    figures = json.dumps({k: round(v) for k, v in timings.items()})
    print(f"rolling update timings (s since the test started): {figures}")


# -- The cutover from the VM to the rehearsed stack, a failed one first, and the way back.

DOMAIN, ZONE = "play.example.net", "example.net"


@dataclass
class Vm:
    """The game VM as players reach it (Caddy's HTTPS port on this machine)."""

    base: str
    ctx: object

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        return http(self.base + path, method, body, self.ctx)


def http(url: str, method: str = "GET", body: dict | None = None, ctx: object = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30, context=ctx) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as err:
        text = err.read()
        try:
            return err.code, json.loads(text)
        except ValueError:
            return err.code, {"text": text.decode(errors="replace")}


def human_game(vm: Vm, moves: list[str]) -> tuple[str, dict]:
    status, created = vm.call("POST", "/api/games", {"size": 9, "opponent": "human"})
    assert status == 201, created
    game, tokens = created["game"]["id"], created["tokens"]
    for n, move in enumerate(moves):
        status, body = vm.call(
            "POST", f"/api/games/{game}/moves", {"move": move, "token": tokens["BW"[n % 2]]}
        )
        assert status == 200, body
    return game, tokens


@pytest.fixture(scope="module")
def cutover_setup(rehearsed: Deployed) -> Iterator[dict]:
    """What an operator provides: a route from the VM's Caddy to the ALB (here, the stand-in ALB on
    the game stack's Docker network) and one from the controller to the database (an SSH forward
    through the VM, as to RDS through a host in the VPC)."""
    from tests.e2e.conftest import STATE_DIR
    from tests.stack_checks import https_context

    alb = f"{STACK}-rehearsal-alb"
    each = "{{range $name, $_ := .NetworkSettings.Networks}}{{$name}} {{end}}"
    networks = rehearsed.vm("docker", "inspect", "-f", each, "tengen-caddy-1").split()
    rehearsed.vm("docker", "network", "connect", networks[0], alb)
    secret = json.loads(
        aws(rehearsed.endpoint, "secretsmanager").get_secret_value(SecretId=f"{STACK}/app")["SecretString"]
    )
    db_port = re.search(r"@[^/:]+:(\d+)/", secret["DATABASE_URL"]).group(1)
    db_ip = rehearsed.vm(
        "docker", "inspect", "-f", f'{{{{(index .NetworkSettings.Networks "{NETWORK}").IPAddress}}}}',
        f"{STACK}-rehearsal-postgres-0",
    )  # fmt: skip
    local = free_port()
    ssh = rehearsed.sandbox.ssh_args("deploy")
    tunnel = subprocess.Popen(
        [*ssh[:-1], "-N", "-o", "ExitOnForwardFailure=yes",
         "-L", f"127.0.0.1:{local}:{db_ip}:{db_port}", ssh[-1]],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        yield {
            "password": urllib.parse.unquote(re.search(r"//[^:]+:([^@]+)@", secret["DATABASE_URL"]).group(1)),
            "vm": Vm(
                f"https://localhost:{rehearsed.sandbox.https_port}",
                https_context(str(STATE_DIR / "caddy-root.crt")),
            ),
            "extra": {
                "scale_out_stack": STACK,
                "cutover_domain": DOMAIN,
                "cutover_hosted_zone": ZONE,
                "scale_out_domain": "rehearsal.example.net",
                "cutover_target_url": f"http://{alb}:18443",
                "cutover_check_url": rehearsed.alb,
                "cutover_database_address": f"127.0.0.1:{local}",
            },
        }
    finally:
        tunnel.terminate()
        tunnel.wait(timeout=10)
        rehearsed.sandbox.exec("docker", "network", "disconnect", networks[0], alb, check=False)


def cutover_run(rehearsed: Deployed, setup: dict, playbook: str = "cutover.yml", **extra: object) -> Run:
    return run_playbook(
        playbook, rehearsed.endpoint, {**setup["extra"], **extra}, inventories=(rehearsed.sandbox.inventory,)
    )


def domain_record(rehearsed: Deployed) -> list[dict]:
    route53 = aws(rehearsed.endpoint, "route53")
    zone = next(z["Id"] for z in route53.list_hosted_zones()["HostedZones"] if z["Name"] == f"{ZONE}.")
    sets = route53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
    return [s for s in sets if s["Name"] == f"{DOMAIN}." and s["Type"] == "A"]


def test_a_refused_and_a_failed_cutover_leave_the_vm_serving_with_its_data(
    rehearsed: Deployed, cutover_setup: dict
) -> None:
    vm = cutover_setup["vm"]
    game, tokens = human_game(vm, ["E5", "C3", "G7"])
    # A game played on the stack before the cutover: its database is not empty, and a cutover
    # without cutover_replace is refused before any change.
    assert http(f"{rehearsed.alb}/api/games", "POST", {"size": 9, "opponent": "human"})[0] == 201
    refused = cutover_run(rehearsed, cutover_setup)
    assert refused.rc != 0
    assert (
        "Check the target database (reachable, writable, empty unless cutover_replace)"
        in refused.failed_tasks
    )
    assert "replace" in refused.output
    # The health check of the stack made to fail (nothing answers there): after the data moved.
    failed = cutover_run(
        rehearsed,
        cutover_setup,
        cutover_replace=True,
        cutover_check_url="http://127.0.0.1:9",
        cutover_check_retries=1,
    )
    assert failed.rc != 0
    assert "The cutover failed at step 4 (checking the stack)" in failed.output, failed.output[-3000:]
    assert "The VM serves again, writable, with its data as before" in failed.output
    for run in (refused, failed):
        assert cutover_setup["password"] not in run.output
    # Writable, its data as before, no forward, no DNS record, the failure in the audit trail.
    status, body = vm.call("GET", f"/api/games/{game}")
    assert status == 200 and [m[1] for m in body["moves"]] == ["E5", "C3", "G7"]
    status, body = vm.call("POST", f"/api/games/{game}/moves", {"move": "D4", "token": tokens["W"]})
    assert status == 200, body
    assert rehearsed.sandbox.exec("test", "-e", "/opt/tengen/forward.json", check=False).returncode != 0
    assert domain_record(rehearsed) == []
    last = json.loads(rehearsed.vm("tail", "-n", "1", "/var/log/tengen/audit.jsonl"))
    assert (last["action"], last["outcome"]) == ("cutover", "failed") and "step 4" in last["detail"]


def test_the_cutover_moves_every_game_and_play_goes_on_then_the_way_back_keeps_what_was_played(
    rehearsed: Deployed, cutover_setup: dict
) -> None:
    from tests.stack_checks import play_vs_ai

    vm = cutover_setup["vm"]
    games = {}
    for moves in (["E5"], ["C3", "G7", "D4"], ["E5", "E4", "D5", "D4", "F5"]):
        game, tokens = human_game(vm, moves)
        games[game] = (tokens, moves)
    ai = play_vs_ai(vm.base, vm.ctx, move="E5")  # a game against the AI, answered on the VM

    started = time.monotonic()
    cut = cutover_run(rehearsed, cutover_setup, cutover_replace=True)
    took = time.monotonic() - started
    assert cut.rc == 0, cut.output[-5000:]
    downtime = re.search(r"Writes were refused for ([0-9.]+) s", cut.output).group(1)
    print(f"cutover: {took:.0f} s in all, writes refused for {downtime} s")

    # Every game is on the stack, as on the VM.
    for game, (_tokens, moves) in games.items():
        status, body = http(f"{rehearsed.alb}/api/games/{game}")
        assert status == 200 and [m[1] for m in body["moves"]] == moves, (game, body)
    status, body = http(f"{rehearsed.alb}/api/games/{ai.game_id}")
    assert status == 200 and [m[1] for m in body["moves"]] == [ai.our_move, ai.ai_move]
    # The domain names the ALB; players reaching the VM play on the stack through its Caddy.
    alb = aws(rehearsed.endpoint, "elbv2").describe_load_balancers(Names=[STACK])["LoadBalancers"][0]
    record = domain_record(rehearsed)
    assert [r["AliasTarget"]["DNSName"].rstrip(".").lower() for r in record] == [
        alb["DNSName"].rstrip(".").lower()
    ]
    game, (tokens, moves) = next(iter(games.items()))
    status, body = vm.call("POST", f"/api/games/{game}/moves", {"move": "C3", "token": tokens["W"]})
    assert status == 200, body
    status, body = http(f"{rehearsed.alb}/api/games/{game}")
    assert [m[1] for m in body["moves"]] == [*moves, "C3"]  # written on the stack
    assert play_vs_ai(vm.base, vm.ctx, move="D4").ai_move  # the stack's engine answers
    again = cutover_run(rehearsed, cutover_setup, cutover_replace=True)
    assert again.rc != 0 and "This VM was already cut over" in again.output

    back = cutover_run(rehearsed, cutover_setup, "rollback.yml")
    assert back.rc == 0, back.output[-5000:]
    # The move made on the stack is on the VM; the VM takes writes; the domain is as before.
    status, body = vm.call("GET", f"/api/games/{game}")
    assert status == 200 and [m[1] for m in body["moves"]] == [*moves, "C3"]
    status, body = vm.call("POST", f"/api/games/{game}/moves", {"move": "G7", "token": tokens["B"]})
    assert status == 200, body
    assert rehearsed.sandbox.exec("test", "-e", "/opt/tengen/forward.json", check=False).returncode != 0
    assert domain_record(rehearsed) == []
    # The stack no longer takes writes: nobody plays on a copy that is not the live one. (There the
    # game is as the stack left it, black to play: the move is refused for the database, not the turn.)
    status, body = http(
        f"{rehearsed.alb}/api/games/{game}/moves", "POST", {"move": "J9", "token": tokens["B"]}
    )
    assert status == 503 and body["reason"] == "read-only", body
    entries = [
        json.loads(line)
        for line in rehearsed.vm("tail", "-n", "2", "/var/log/tengen/audit.jsonl").splitlines()
    ]
    assert [(e["action"], e["outcome"]) for e in entries] == [("cutover", "ok"), ("cutover rollback", "ok")]
