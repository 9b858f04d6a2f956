"""An engine VM beside the game VM: a second sandbox VM in the `engines` group, on a Docker network
the two share as a provider's private network. site.yml hardens it and runs the engine alone
there; the game VM's backend uses it beside its own engine.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.conftest import REPO, free_port
from tests.e2e.conftest import STATE_DIR, kept_ports, tail
from tests.e2e.sandbox import Sandbox, run_playbook
from tests.e2e.test_site import tcp_probe
from tests.player_load import PlayerLoad
from tests.stack_checks import https_context, play_vs_ai

# One /24 per checkout, so that two checkouts' networks do not overlap.
_NET = int(hashlib.sha256(str(STATE_DIR).encode()).hexdigest()[:4], 16) % 200 + 20
SUBNET = f"10.213.{_NET}.0/24"
GAME_ADDRESS = f"10.213.{_NET}.10"
ENGINE_ADDRESS = f"10.213.{_NET}.11"
ENGINE_URL = f"http://{ENGINE_ADDRESS}:8001"


@dataclass
class EngineVm:
    container: str
    network: str
    token: str
    seconds: float  # how long making and configuring it took


def vm_http(vm: Sandbox, url: str, token: str | None = None, body: dict | None = None) -> int:
    """The HTTP status of one request made from inside the game VM (its Python, its address)."""
    script = (
        "import json, sys, urllib.request, urllib.error\n"
        "url, token, body = sys.argv[1], sys.argv[2], sys.argv[3]\n"
        "req = urllib.request.Request(url, data=body.encode() or None, method='POST' if body else 'GET')\n"
        "req.add_header('Content-Type', 'application/json')\n"
        "if token: req.add_header('Authorization', 'Bearer ' + token)\n"
        "try:\n"
        "    print(urllib.request.urlopen(req, timeout=20).status)\n"
        "except urllib.error.HTTPError as exc:\n"
        "    print(exc.code)\n"
        "except OSError:\n"
        "    print(0)\n"
    )
    run = vm.exec("python3", "-c", script, url, token or "", json.dumps(body) if body else "")
    return int(run.stdout.decode().strip())


def backend_metrics(vm: Sandbox) -> str:
    names = vm.exec("docker", "ps", "--filter", "name=tengen-backend-", "--format", "{{.Names}}")
    backend = names.stdout.decode().split()[0]
    script = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8000/metrics').read().decode())"
    return vm.exec("docker", "exec", backend, "python3", "-c", script).stdout.decode()


def series(text: str, name: str, labels: str) -> float:
    match = re.search(rf"^{name}\{{{re.escape(labels)}\}} (\S+)$", text, re.M)
    return float(match[1]) if match else 0.0


def answered_by_engine_vm(vm: Sandbox) -> float:
    return series(backend_metrics(vm), "tengen_engine_requests_total", f'engine="{ENGINE_URL}",outcome="ok"')


def engine_vm_up(vm: Sandbox) -> float:
    return series(backend_metrics(vm), "tengen_engine_up", f'engine="{ENGINE_URL}"')


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} not reached within {timeout} s"
        time.sleep(1)


def write_inventory(sandbox: Sandbox, engine_ssh_port: int) -> str:
    inventory = STATE_DIR / "engine-vms-inventory"
    inventory.mkdir(parents=True, exist_ok=True)
    hosts = {
        "vm": {
            "hosts": {
                "sandbox": {
                    "ansible_host": "127.0.0.1",
                    "ansible_port": sandbox.ssh_port,
                    "tengen_private_address": GAME_ADDRESS,
                }
            }
        },
        "engines": {
            "hosts": {
                "engine": {
                    "ansible_host": "127.0.0.1",
                    "ansible_port": engine_ssh_port,
                    "tengen_private_address": ENGINE_ADDRESS,
                }
            }
        },
        "all": {"vars": {"sandbox_dir": str(STATE_DIR)}},
    }
    (inventory / "hosts.yml").write_text(json.dumps(hosts, indent=2) + "\n")
    group_vars = inventory / "group_vars"
    if not group_vars.is_symlink():
        group_vars.symlink_to(REPO / "inventories" / "sandbox" / "group_vars")
    return str(inventory)


@pytest.fixture(scope="module")
def engine_vm(sandbox: Sandbox) -> Iterator[EngineVm]:
    started = time.monotonic()
    container = f"{sandbox.container}-engine"
    network = f"{sandbox.container}-private"
    keep = os.environ.get("TENGEN_KEEP_SANDBOX") == "1"
    ports = kept_ports(container) or {
        "ssh_port": free_port(),
        "http_port": free_port(),
        "https_port": free_port(),
    }
    engine_vars = {
        "sandbox_name": container,
        "sandbox_dir": str(STATE_DIR),
        **{f"sandbox_{name}": port for name, port in ports.items()},
        "sandbox_network": network,
        "sandbox_network_subnet": SUBNET,
        "sandbox_network_address": ENGINE_ADDRESS,
    }
    args = ("-e", json.dumps(engine_vars))
    try:
        made = run_playbook(None, "playbooks/sandbox.yml", *args)
        assert made.returncode == 0, f"playbooks/sandbox.yml failed:\n{tail(made)}"
        # The game VM joins the same network at its fixed address, as a second NIC would.
        joined = subprocess.run(
            ["docker", "network", "connect", "--ip", GAME_ADDRESS, network, sandbox.container],
            capture_output=True,
            text=True,
            check=False,
        )
        assert joined.returncode == 0 or "already exists" in joined.stderr, joined.stderr
        site = run_playbook(write_inventory(sandbox, ports["ssh_port"]), "site.yml")
        assert site.returncode == 0, f"site.yml failed on the game VM and the engine VM:\n{tail(site)}"
        token = (STATE_DIR / "engine-token").read_text().split()[0]
        yield EngineVm(container, network, token, time.monotonic() - started)
    finally:
        # The game VM as the rest of the session knows it: no engine VM, off the shared network
        # (TENGEN_KEEP_SANDBOX=1 keeps the engine VM and the network for the next session).
        # deploy.yml runs game_stack alone, which is all the engine VM changed on the game VM.
        if not keep:
            run_playbook(None, "playbooks/sandbox.yml", *args, "-e", "state=absent")
        restored = run_playbook(sandbox.inventory, "playbooks/deploy.yml")
        if not keep:
            subprocess.run(["docker", "network", "disconnect", network, sandbox.container], check=False)
            subprocess.run(["docker", "network", "rm", network], capture_output=True, check=False)
        assert restored.returncode == 0, f"deploy.yml did not restore the game VM:\n{tail(restored)}"


@pytest.fixture(scope="module")
def base(sandbox: Sandbox) -> str:
    return f"https://localhost:{sandbox.https_port}"


@pytest.fixture(scope="module")
def ctx():
    return https_context(str(STATE_DIR / "caddy-root.crt"))


def test_the_engine_vm_runs_the_engine_alone_and_answers_ai_games(
    sandbox: Sandbox, engine_vm: EngineVm, base, ctx
) -> None:
    print(f"engine VM made and site.yml run on both VMs in {engine_vm.seconds:.0f} s")
    inner = subprocess.run(
        ["docker", "exec", engine_vm.container, "docker", "ps", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert inner == ["tengen-engine-1"]
    env = subprocess.run(
        ["docker", "exec", engine_vm.container, "stat", "-c", "%a", "/opt/tengen/engine.env"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert env.stdout.strip() == "600"
    before = answered_by_engine_vm(sandbox)
    for move in ("E5", "C3", "G7", "D4"):
        play_vs_ai(base, ctx, move)  # each: a game made, a move played, the AI's reply over /ws
    assert answered_by_engine_vm(sandbox) >= before + 1
    assert engine_vm_up(sandbox) == 1


def test_the_engine_port_answers_the_game_vm_and_refuses_the_host(
    sandbox: Sandbox, engine_vm: EngineVm
) -> None:
    assert vm_http(sandbox, f"{ENGINE_URL}/readyz") == 200
    assert tcp_probe(ENGINE_ADDRESS, 8001) == "dropped"  # from this machine: the firewall drops it
    assert tcp_probe(ENGINE_ADDRESS, 22) == "open"


def test_the_engine_vm_refuses_a_request_without_the_secret(sandbox: Sandbox, engine_vm: EngineVm) -> None:
    move = {"size": 9, "komi": 7.5, "moves": [["B", "E5"]], "color": "W"}
    assert vm_http(sandbox, f"{ENGINE_URL}/move", body=move) == 401
    assert vm_http(sandbox, f"{ENGINE_URL}/move", token=engine_vm.token + "x", body=move) == 401
    assert vm_http(sandbox, f"{ENGINE_URL}/move", token=engine_vm.token, body=move) == 200


def test_a_stopped_engine_vm_is_worked_around_and_used_again_when_back(
    sandbox: Sandbox, engine_vm: EngineVm, base, ctx
) -> None:
    subprocess.run(["docker", "stop", "-t", "5", engine_vm.container], check=True, capture_output=True)
    try:
        with PlayerLoad(base, ctx) as load:
            for move in ("C3", "G7", "D4", "F6"):
                play_vs_ai(base, ctx, move)  # answered by the game VM's own engine meanwhile
            time.sleep(10)  # players go on for a while with the engine VM still away
        assert load.report.clean, f"{load.report.summary()}: {load.report.details()}"
        assert load.report.moves > 20 and load.report.ai_replies > 0
        assert engine_vm_up(sandbox) == 0
    finally:
        subprocess.run(["docker", "start", engine_vm.container], check=True, capture_output=True)
    wait_until(lambda: engine_vm_up(sandbox) == 1, 180, "the engine VM taken back after its restart")
    before = answered_by_engine_vm(sandbox)
    for move in ("E5", "C3", "G7", "D4"):
        play_vs_ai(base, ctx, move)
    assert answered_by_engine_vm(sandbox) > before
