"""Two engine VMs beside the game VM: two more sandbox VMs in the `engines` group, on a Docker
network the three share as a provider's private network. site.yml hardens them and runs the
engine alone there; the game VM's backend shares its AI moves between its own engine and both
engine VMs, and works around one that stops.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

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
# The engine VMs by inventory name, each at a fixed address of its own.
ENGINE_ADDRESSES = {"engine": f"10.213.{_NET}.11", "engine2": f"10.213.{_NET}.12"}
LOCAL_ENGINE_URL = "http://engine:8001"  # the game VM's own engine, on its Compose network
AI_MOVES = ("E5", "C3", "G7", "D4", "F6", "C7")


def engine_url(address: str) -> str:
    return f"http://{address}:8001"


@dataclass
class EngineVm:
    name: str  # its inventory name
    container: str
    address: str  # on the shared network
    url: str  # as the game VM's backend knows it


@dataclass
class EngineVms:
    vms: list[EngineVm]
    network: str
    inventory: str  # the game VM and both engine VMs
    token: str
    seconds: float  # how long making both and configuring the three VMs took


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


def answered(vm: Sandbox) -> dict[str, float]:
    """The AI moves each engine (by URL) has answered, as the game VM's backend counts them."""
    text = backend_metrics(vm)
    urls = [LOCAL_ENGINE_URL, *(engine_url(address) for address in ENGINE_ADDRESSES.values())]
    return {url: series(text, "tengen_engine_requests_total", f'engine="{url}",outcome="ok"') for url in urls}


def engine_up(vm: Sandbox, url: str) -> float:
    return series(backend_metrics(vm), "tengen_engine_up", f'engine="{url}"')


def grown(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {url: after[url] - before[url] for url in before}


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} not reached within {timeout} s"
        time.sleep(1)


def known_hosts(name: str) -> Path:
    # One file per engine VM: the two playbooks/sandbox.yml runs write theirs at the same time.
    return STATE_DIR / f"known_hosts-{name}"


def write_inventory(sandbox: Sandbox, ssh_ports: dict[str, int]) -> str:
    inventory = STATE_DIR / "engine-vms-inventory"
    inventory.mkdir(parents=True, exist_ok=True)
    engines = {
        name: {
            "ansible_host": "127.0.0.1",
            "ansible_port": ssh_ports[name],
            "ansible_ssh_common_args": f"-o UserKnownHostsFile={known_hosts(name)}",
            "tengen_private_address": address,
        }
        for name, address in ENGINE_ADDRESSES.items()
    }
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
        "engines": {"hosts": engines},
        "all": {"vars": {"sandbox_dir": str(STATE_DIR)}},
    }
    (inventory / "hosts.yml").write_text(json.dumps(hosts, indent=2) + "\n")
    group_vars = inventory / "group_vars"
    if not group_vars.is_symlink():
        group_vars.symlink_to(REPO / "inventories" / "sandbox" / "group_vars")
    return str(inventory)


def recap(run: subprocess.CompletedProcess) -> dict[str, dict[str, int]]:
    """PLAY RECAP's counts per host: {"sandbox": {"ok": 40, "changed": 0, ...}, ...}."""
    block = run.stdout.split("PLAY RECAP", 1)[-1].split("\n\n", 1)[0]  # up to the blank line after it
    hosts = {}
    for line in block.splitlines():
        match = re.match(r"^(\S+)\s+:\s+(ok=\d+.*)$", line)
        if match:
            hosts[match[1]] = {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match[2])}
    return hosts


def sandbox_playbooks(
    args: dict[str, tuple[str, ...]], *extra: str
) -> dict[str, subprocess.CompletedProcess]:
    """playbooks/sandbox.yml for every engine VM at once (each its own -e), by engine VM name."""
    with ThreadPoolExecutor(len(args)) as pool:
        runs = {
            name: pool.submit(run_playbook, None, "playbooks/sandbox.yml", *vm_args, *extra)
            for name, vm_args in args.items()
        }
        return {name: run.result() for name, run in runs.items()}


@pytest.fixture(scope="module")
def engine_vms(sandbox: Sandbox) -> Iterator[EngineVms]:
    started = time.monotonic()
    network = f"{sandbox.container}-private"
    keep = os.environ.get("TENGEN_KEEP_SANDBOX") == "1"
    args = {}
    ssh_ports = {}
    vms = []
    for name, address in ENGINE_ADDRESSES.items():
        container = f"{sandbox.container}-{name}"
        ports = kept_ports(container) or {
            "ssh_port": free_port(),
            "http_port": free_port(),
            "https_port": free_port(),
        }
        engine_vars = {
            "sandbox_name": container,
            "sandbox_dir": str(STATE_DIR),
            "sandbox_known_hosts": str(known_hosts(name)),
            **{f"sandbox_{port}": number for port, number in ports.items()},
            "sandbox_network": network,
            "sandbox_network_subnet": SUBNET,
            "sandbox_network_address": address,
        }
        args[name] = ("-e", json.dumps(engine_vars))
        ssh_ports[name] = ports["ssh_port"]
        vms.append(EngineVm(name, container, address, engine_url(address)))
    try:
        # The network first, so that the two playbooks below find it made rather than race to make it.
        made = subprocess.run(
            ["docker", "network", "create", "--subnet", SUBNET, network],
            capture_output=True,
            text=True,
            check=False,
        )
        assert made.returncode == 0 or "already exists" in made.stderr, made.stderr
        runs = sandbox_playbooks(args)
        for name, run in runs.items():
            assert run.returncode == 0, f"playbooks/sandbox.yml failed for {name}:\n{tail(run)}"
        # The game VM joins the same network at its fixed address, as a second NIC would.
        joined = subprocess.run(
            ["docker", "network", "connect", "--ip", GAME_ADDRESS, network, sandbox.container],
            capture_output=True,
            text=True,
            check=False,
        )
        assert joined.returncode == 0 or "already exists" in joined.stderr, joined.stderr
        inventory = write_inventory(sandbox, ssh_ports)
        site = run_playbook(inventory, "site.yml")
        assert site.returncode == 0, f"site.yml failed on the game VM and the engine VMs:\n{tail(site)}"
        token = (STATE_DIR / "engine-token").read_text().split()[0]
        yield EngineVms(vms, network, inventory, token, time.monotonic() - started)
    finally:
        # The game VM as the rest of the session knows it: no engine VM, off the shared network
        # (TENGEN_KEEP_SANDBOX=1 keeps the engine VMs and the network for the next session).
        # deploy.yml runs game_stack alone, which is all the engine VMs changed on the game VM.
        if not keep:
            sandbox_playbooks(args, "-e", "state=absent")
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


def test_a_second_site_run_over_the_three_vms_changes_nothing(engine_vms: EngineVms) -> None:
    print(f"\nboth engine VMs made and site.yml run on the three VMs in {engine_vms.seconds:.0f} s")
    again = run_playbook(engine_vms.inventory, "site.yml")
    assert again.returncode == 0, f"the second site.yml failed:\n{tail(again)}"
    counts = recap(again)
    assert set(counts) == {"sandbox", *ENGINE_ADDRESSES}, again.stdout[-3000:]
    changed = {host: count for host, count in counts.items() if count["changed"] or count["failed"]}
    assert not changed, f"the second site.yml changed or failed on {changed}:\n{tail(again, 120)}"


def test_each_engine_vm_runs_the_engine_alone_and_shares_the_ai_games(
    sandbox: Sandbox, engine_vms: EngineVms, base, ctx
) -> None:
    for vm in engine_vms.vms:
        inner = subprocess.run(
            ["docker", "exec", vm.container, "docker", "ps", "--format", "{{.Names}}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert inner == ["tengen-engine-1"], vm.name
        env = subprocess.run(
            ["docker", "exec", vm.container, "stat", "-c", "%a", "/opt/tengen/engine.env"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert env.stdout.strip() == "600", vm.name
        assert engine_up(sandbox, vm.url) == 1, vm.name
    before = answered(sandbox)
    for move in AI_MOVES:
        play_vs_ai(base, ctx, move)  # each: a game made, a move played, the AI's reply over /ws
    share = grown(before, answered(sandbox))
    print(f"AI moves answered per engine over {len(AI_MOVES)} games: {share}")
    # The game VM's own engine stays in the pool beside the engine VMs: all three take moves.
    assert all(count >= 1 for count in share.values()), share


def test_the_engine_ports_answer_the_game_vm_and_refuse_the_host(
    sandbox: Sandbox, engine_vms: EngineVms
) -> None:
    for vm in engine_vms.vms:
        assert vm_http(sandbox, f"{vm.url}/readyz") == 200, vm.name
        assert tcp_probe(vm.address, 8001) == "dropped", vm.name  # from this machine: the firewall drops it
        assert tcp_probe(vm.address, 22) == "open", vm.name


def test_the_engine_vms_refuse_a_request_without_the_secret(sandbox: Sandbox, engine_vms: EngineVms) -> None:
    move = {"size": 9, "komi": 7.5, "moves": [["B", "E5"]], "color": "W"}
    for vm in engine_vms.vms:
        assert vm_http(sandbox, f"{vm.url}/move", body=move) == 401, vm.name
        assert vm_http(sandbox, f"{vm.url}/move", token=engine_vms.token + "x", body=move) == 401, vm.name
        assert vm_http(sandbox, f"{vm.url}/move", token=engine_vms.token, body=move) == 200, vm.name


def test_a_stopped_engine_vm_is_worked_around_and_used_again_when_back(
    sandbox: Sandbox, engine_vms: EngineVms, base, ctx
) -> None:
    stopped, other = engine_vms.vms[1], engine_vms.vms[0]
    subprocess.run(["docker", "stop", "-t", "5", stopped.container], check=True, capture_output=True)
    try:
        before = answered(sandbox)
        with PlayerLoad(base, ctx) as load:
            for move in AI_MOVES:
                play_vs_ai(base, ctx, move)  # answered by the other engine VM and the game VM's own
            time.sleep(10)  # players go on for a while with the engine VM still away
        assert load.report.clean, f"{load.report.summary()}: {load.report.details()}"
        assert load.report.moves > 20 and load.report.ai_replies > 0
        assert engine_up(sandbox, stopped.url) == 0
        assert engine_up(sandbox, other.url) == 1
        share = grown(before, answered(sandbox))
        print(f"\nAI moves answered per engine with {stopped.name} stopped: {share}")
        assert share[other.url] >= 1, share
    finally:
        subprocess.run(["docker", "start", stopped.container], check=True, capture_output=True)
    wait_until(
        lambda: engine_up(sandbox, stopped.url) == 1, 180, f"{stopped.name} taken back after its restart"
    )
    before = answered(sandbox)
    for move in AI_MOVES:
        play_vs_ai(base, ctx, move)
    share = grown(before, answered(sandbox))
    print(f"AI moves answered per engine with {stopped.name} back: {share}")
    assert share[stopped.url] >= 1 and share[other.url] >= 1, share
