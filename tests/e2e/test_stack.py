"""The game stack on the sandbox VM: it comes back after a crash or a reboot with every stored
game, and releases are health-gated without a failed request."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time

import aiohttp
import pytest

from tests.conftest import REPO
from tests.e2e.conftest import STATE_DIR
from tests.e2e.sandbox import ANSIBLE_BIN, ansible_env, run_playbook
from tests.player_load import PlayerLoad
from tests.stack_checks import get_game, https_context, play_vs_ai


@pytest.fixture(scope="module")
def base(sandbox) -> str:
    return f"https://localhost:{sandbox.https_port}"


@pytest.fixture(scope="module")
def ctx(sandbox):
    return https_context(str(STATE_DIR / "caddy-root.crt"))


def ledger(sandbox) -> dict:
    return json.loads(sandbox.exec("cat", "/opt/tengen/releases.json").stdout)


def last_audit(sandbox, count: int = 1) -> list[tuple[str, str, str]]:
    """The last entries of the VM's audit trail: action, outcome, release id."""
    text = sandbox.exec("tail", "-n", str(count), "/var/log/tengen/audit.jsonl").stdout.decode()
    return [(e["action"], e["outcome"], e["release"]) for e in map(json.loads, text.splitlines())]


def wait_until_served(base, ctx, game_id: str, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    last = "nothing yet"
    while time.monotonic() < deadline:
        try:
            resp = get_game(base, ctx, game_id)
            if resp.status == 200:
                return json.loads(resp.body)
            last = f"HTTP {resp.status}"
        except OSError as exc:
            last = repr(exc)
        time.sleep(2)
    raise AssertionError(f"the game was not served again within {timeout} s (last: {last})")


# The tail the sandbox's group_vars (vm/game_stack.yml) add to the generated backend secret.
SECRET_TAIL = " #'q' $HOME ${X} = " + '"dq"'
HOSTILE = {
    "HASH": "a#b",
    "HASH_SPACED": "a # b",
    "SINGLE_QUOTED": "'q'",
    "DOUBLE_QUOTED": '"dq"',
    "DOLLAR": "$HOME",
    "BRACED": "${X}",
    "DOUBLED": "$$",
    "BACKSLASH": "back\\slash",
    "BACKSLASH_QUOTE": "it\\'s",
    "BACKSLASH_END": "end\\",
    "SPACES": "  both ends  ",
    "EQUALS": "k=v==",
    "LINES": "one\ntwo",
    "EMPTY": "",
}


def secrets_of_the_sandbox() -> dict[str, str]:
    """The secrets the sandbox's group_vars generate (password lookups next to the SSH key)."""
    return {name: (STATE_DIR / name).read_text().split()[0] for name in ("engine-token", "backend-secret")}


def compose_reads_back(sandbox, env_files: dict[str, str]) -> dict[str, dict[str, str]]:
    """The environment `docker compose config` (the VM's Compose) reads from each env file."""
    workdir = sandbox.exec("mktemp", "-d").stdout.decode().strip()
    try:
        services = {}
        for name, text in env_files.items():
            sandbox.exec("sh", "-c", 'cat >"$0"', f"{workdir}/{name}", input=text.encode())
            services[name.split(".")[0]] = {"image": "scratch", "env_file": [name]}
        compose = json.dumps({"services": services})  # JSON is YAML
        sandbox.exec("sh", "-c", 'cat >"$0"', f"{workdir}/compose.yml", input=compose.encode())
        shown = sandbox.exec(
            "docker",
            "compose",
            "--project-directory",
            workdir,
            "-p",
            "envcheck",
            "config",
            "--format",
            "json",
        )
    finally:
        sandbox.exec("rm", "-rf", workdir)
    # config writes every $ of a value as $$ (Compose's escape), which is no part of the value.
    return {
        service: {k: v.replace("$$", "$") for k, v in (spec.get("environment") or {}).items()}
        for service, spec in json.loads(shown.stdout)["services"].items()
    }


def test_compose_reads_every_env_value_back_unchanged(sandbox, tmp_path):
    playbook = tmp_path / "render.yml"
    templates = REPO / "roles" / "game_stack" / "templates"
    playbook.write_text(
        json.dumps(
            [
                {
                    "hosts": "localhost",
                    "connection": "local",
                    "gather_facts": False,
                    "vars_files": [
                        str(REPO / "roles/game_stack/defaults/main.yml"),
                        str(REPO / "roles/game_stack/vars/main.yml"),
                    ],
                    "tasks": [
                        {
                            "name": "Render the env files of the role",
                            "ansible.builtin.template": {
                                "src": f"{templates}/{{{{ item }}}}.j2",
                                "dest": f"{tmp_path}/{{{{ item }}}}",
                                "mode": "0600",
                            },
                            "loop": ["backend.env", "engine.env"],
                        }
                    ],
                }
            ]
        )
    )
    token = "tok'en #1 $HOME ${X} \\"
    values = {
        "game_stack_engine_token": token,
        "game_stack_backend_env": {f"PLAIN_{k}": v for k, v in HOSTILE.items()},
        "game_stack_backend_secret_env": {f"SECRET_{k}": v for k, v in HOSTILE.items()},
        "game_stack_engine_env": HOSTILE,
    }
    (tmp_path / "values.json").write_text(json.dumps(values))
    rendered = run_playbook(None, playbook, "-e", f"@{tmp_path / 'values.json'}")
    assert rendered.returncode == 0, rendered.stdout[-3000:]
    read = compose_reads_back(
        sandbox, {name: (tmp_path / name).read_text() for name in ("backend.env", "engine.env")}
    )
    expected_backend = {
        **{f"PLAIN_{k}": v for k, v in HOSTILE.items()},
        **{f"SECRET_{k}": v for k, v in HOSTILE.items()},
        "TENGEN_ENGINE_TOKEN": token,
    }
    assert {k: read["backend"].get(k) for k in expected_backend} == expected_backend
    assert read["backend"]["TENGEN_PORT"] == "8000"
    assert {k: read["engine"].get(k) for k in HOSTILE} == HOSTILE
    assert read["engine"]["TENGEN_ENGINE_TOKEN"] == token


def test_the_backend_gets_its_secret_unchanged(sandbox):
    live = ledger(sandbox)["releases"][0]["slot"]
    shown = sandbox.exec("docker", "exec", f"tengen-backend-{live}-1", "printenv", "TENGEN_SANDBOX_SECRET")
    assert shown.stdout.decode().rstrip("\n") == secrets_of_the_sandbox()["backend-secret"] + SECRET_TAIL


def test_killed_backend_comes_back_with_the_games(sandbox, base, ctx):
    game = play_vs_ai(base, ctx, move="C3")
    live = ledger(sandbox)["releases"][0]["slot"]
    # A crash, not `docker kill` (Docker treats that as an operator's stop and does not restart).
    pid = sandbox.exec("docker", "inspect", "-f", "{{.State.Pid}}", f"tengen-backend-{live}-1").stdout.strip()
    sandbox.exec("kill", "-9", pid.decode())
    stored = wait_until_served(base, ctx, game.game_id)
    assert [m[1] for m in stored["moves"][:2]] == ["C3", game.ai_move]


def test_rebooted_vm_comes_back_with_the_games(sandbox, base, ctx):
    game = play_vs_ai(base, ctx, move="G7")
    subprocess.run(["docker", "restart", "--time", "30", sandbox.container], check=True, capture_output=True)
    stored = wait_until_served(base, ctx, game.game_id, timeout=300)
    assert [m[1] for m in stored["moves"][:2]] == ["G7", game.ai_move]
    # Still playable after the reboot: the engine is back too.
    assert play_vs_ai(base, ctx, move="E5").ai_move


def build_variant(base_image: str, tag: str, broken: bool) -> None:
    """An image derived from the live backend; `broken` makes its /readyz answer 404."""
    steps = [f"FROM {base_image}"]
    if broken:
        steps += [
            "USER root",
            'RUN sed -i \'s#"/readyz"#"/readyz-gone"#\' /opt/tengen/tengen_app/app.py'
            " && grep -q readyz-gone /opt/tengen/tengen_app/app.py",
            "USER 10001:10001",
        ]
    steps.append(f"LABEL org.tengen.test-variant={tag}")
    subprocess.run(
        ["docker", "build", "-q", "-t", f"tengen/backend:{tag}", "-"],
        input="\n".join(steps).encode(),
        check=True,
        capture_output=True,
    )


async def _wait_for_close(url: str, ctx, started: asyncio.Event, timeout: float) -> int | None:
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, ssl=ctx) as ws:
            await ws.receive(timeout=30)  # the game's state
            started.set()
            msg = await ws.receive(timeout=timeout)
            while msg.type == aiohttp.WSMsgType.TEXT:
                msg = await ws.receive(timeout=timeout)
            # The code in the server's close frame, as a browser's CloseEvent reports it (nginx's
            # previous worker may drop the connection before the client's answering frame).
            return msg.data if msg.type == aiohttp.WSMsgType.CLOSE else None


def test_failed_release_rolls_back_by_itself_without_a_failed_request(sandbox, base, ctx):
    before = ledger(sandbox)
    live_image = before["releases"][0]["images"]["backend"]
    tag = f"e2e-broken-{int(time.time())}"  # a new tag per run: tags are immutable
    build_variant(live_image, tag, broken=True)
    with PlayerLoad(base, ctx) as load:
        proc = sandbox.ansible_playbook(
            "playbooks/deploy.yml",
            "-v",  # every result printed, the failed release's container details too
            "-e",
            f"game_stack_backend_image=tengen/backend:{tag}",
            "-e",
            "game_stack_health_timeout=90",
        )
    assert proc.returncode != 0, proc.stdout[-3000:]
    assert "failed its health gate" in proc.stdout
    assert "Read the health check of the new backend" in proc.stdout  # the details were read
    output = proc.stdout + proc.stderr
    printed = [name for name, secret in secrets_of_the_sandbox().items() if secret in output]
    assert printed == [], f"the verbose run printed the secret(s) {printed}"
    assert load.report.clean, f"{load.report.summary()}: {load.report.details()}"
    assert load.report.moves > 50 and load.report.ai_replies > 0
    after = ledger(sandbox)
    assert after["releases"][0] == before["releases"][0]
    assert last_audit(sandbox)[-1:] == [("release", "rolled back", before["releases"][0]["id"])]
    running = sandbox.exec("docker", "ps", "--format", "{{.Image}}").stdout.decode().split()
    assert live_image in running and f"tengen/backend:{tag}" not in running
    # The failed run gave its change lock back: another controller is not blocked by it.
    assert sandbox.exec("cat", "/run/lock/tengen-change.lock").stdout.decode().strip() == ""


def test_good_release_and_rollback_keep_serving_and_reconnect_websockets(sandbox, base, ctx):
    before = ledger(sandbox)["releases"][0]
    tag = f"e2e-good-{int(time.time())}"
    build_variant(before["images"]["backend"], tag, broken=False)
    game = play_vs_ai(base, ctx, move="F6")
    ws_url = base.replace("https://", "wss://") + f"/ws/games/{game.game_id}"

    # A record already in the lock file (a killed controller's) is not this release's lock.
    earlier = sandbox.exec("cat", "/run/lock/tengen-change.lock", check=False).stdout.decode()

    async def second_deploy_once_the_first_holds_the_lock() -> subprocess.CompletedProcess:
        for _ in range(300):
            held = sandbox.exec("cat", "/run/lock/tengen-change.lock", check=False).stdout.decode()
            if '"deploy.yml"' in held and held != earlier:
                return await asyncio.to_thread(
                    sandbox.ansible_playbook, "playbooks/deploy.yml", "-e", "rollback=true"
                )
            await asyncio.sleep(0.5)
        raise AssertionError("the release never took the change lock")

    async def release() -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess, int | None]:
        started = asyncio.Event()
        watcher = asyncio.create_task(_wait_for_close(ws_url, ctx, started, timeout=900))
        await started.wait()
        new_image = f"game_stack_backend_image=tengen/backend:{tag}"
        first = asyncio.create_task(
            asyncio.to_thread(sandbox.ansible_playbook, "playbooks/deploy.yml", "-e", new_image)
        )
        second = await second_deploy_once_the_first_holds_the_lock()
        proc = await first
        if proc.returncode != 0:  # the old backend still runs: its WebSocket stays open
            watcher.cancel()
            return proc, second, None
        return proc, second, await asyncio.wait_for(watcher, 60)

    with PlayerLoad(base, ctx) as load:
        proc, concurrent, close_code = asyncio.run(release())
    assert proc.returncode == 0, proc.stdout[-3000:]
    # A second deploy during the release (a rollback, which would have switched slots under it)
    # stopped at the lock, naming the release that held it.
    assert concurrent.returncode != 0, concurrent.stdout[-3000:]
    assert "is being changed by deploy.yml by" in concurrent.stdout + concurrent.stderr
    assert load.report.clean, f"{load.report.summary()}: {load.report.details()}"
    assert load.report.moves > 50 and load.report.reconnects > 0
    # The old backend closed its WebSockets with 1012 (service restart): clients reconnect.
    assert close_code == 1012
    after = ledger(sandbox)["releases"]
    assert after[0]["images"]["backend"] == f"tengen/backend:{tag}"
    assert after[0]["slot"] != before["slot"]
    assert after[1]["id"] == before["id"]
    assert play_vs_ai(base, ctx, move="E5").ai_move  # the new backend plays

    with PlayerLoad(base, ctx) as load:
        proc = sandbox.ansible_playbook("playbooks/deploy.yml", "-e", "rollback=true")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert load.report.clean, f"{load.report.summary()}: {load.report.details()}"
    restored = ledger(sandbox)["releases"]
    assert restored[0]["images"] == before["images"]
    # The release and the rollback stopped at its lock (in either order), then the rollback: each
    # in the audit trail.
    *during, last = last_audit(sandbox, 3)
    assert last == ("rollback", "ok", before["id"])
    assert sorted(entry[:2] for entry in during) == [("release", "ok"), ("rollback", "failed")]
    assert ("release", "ok", after[0]["id"]) in during
    assert wait_until_served(base, ctx, game.game_id)["moves"][:2] == [["B", "F6"], ["W", game.ai_move]]


def deploy_until(sandbox, task: str, *extra: str) -> str:
    """Run deploy.yml and kill the controller (every process of it) as `task` starts."""
    cmd = [
        str(ANSIBLE_BIN / "ansible-playbook"),
        "-i",
        str(sandbox.inventory),
        "playbooks/deploy.yml",
        *extra,
    ]
    proc = subprocess.Popen(
        cmd,
        env=ansible_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith(f"TASK [game_stack : {task}"):
            os.killpg(proc.pid, signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "".join(seen[-40:])
    return "".join(seen)


@pytest.mark.parametrize(
    "task",
    [
        "release | Switch nginx to the new backend",  # recorded as live, nginx still on the old slot
        "release | Stop the old backend",  # nginx switched, the old slot still running
    ],
)
def test_a_release_whose_controller_dies_is_finished_by_the_next_run(sandbox, base, ctx, task):
    before = ledger(sandbox)["releases"][0]
    tag = f"e2e-crash-{int(time.time())}"
    build_variant(before["images"]["backend"], tag, broken=False)
    image = f"game_stack_backend_image=tengen/backend:{tag}"
    with PlayerLoad(base, ctx) as load:
        deploy_until(sandbox, task, "-e", image)
        proc = sandbox.ansible_playbook("playbooks/deploy.yml", "-e", image)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "no longer running" in proc.stdout + proc.stderr  # the dead run's lock was taken over
    assert load.report.clean, f"{load.report.summary()}: {load.report.details()}"
    assert load.report.moves > 20
    live = ledger(sandbox)["releases"][0]
    assert live["images"]["backend"] == f"tengen/backend:{tag}"
    running = sandbox.exec("docker", "ps", "--format", "{{.Names}}").stdout.decode().split()
    assert sorted(n for n in running if "-backend-" in n) == [f"tengen-backend-{live['slot']}-1"]
    served = sandbox.exec("cat", "/opt/tengen/nginx/backend.inc").stdout.decode()
    assert f"backend-{live['slot']}:8000" in served


def test_every_container_has_memory_process_and_tmpfs_limits(sandbox):
    # Last in this module: the load and the releases above ran within these limits.
    ids = sandbox.exec("docker", "ps", "-q", "--filter", "label=com.docker.compose.project=tengen")
    containers = json.loads(sandbox.exec("docker", "inspect", *ids.stdout.decode().split()).stdout)
    names = sorted(c["Name"].lstrip("/") for c in containers)
    assert {"tengen-caddy-1", "tengen-nginx-1", "tengen-engine-1"} <= set(names), names
    assert any(n.startswith("tengen-backend-") for n in names), names
    unbounded = {
        c["Name"].lstrip("/"): {
            "Memory": c["HostConfig"]["Memory"],
            "PidsLimit": c["HostConfig"]["PidsLimit"],
            "Tmpfs": c["HostConfig"]["Tmpfs"],
        }
        for c in containers
        if not (
            c["HostConfig"]["Memory"] > 0
            and (c["HostConfig"]["PidsLimit"] or 0) > 0
            and c["HostConfig"]["Tmpfs"]
            and all("size=" in options for options in c["HostConfig"]["Tmpfs"].values())
        )
    }
    assert unbounded == {}
    assert [c["Name"] for c in containers if c["State"]["OOMKilled"]] == []
