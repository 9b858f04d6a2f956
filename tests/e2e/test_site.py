"""site.yml on the sandbox VM: what an operator and an attacker see from outside."""

from __future__ import annotations

import getpass
import json
import re
import socket
import subprocess
import time

import pytest

from tests.e2e.sandbox import Sandbox


def ssh(sandbox: Sandbox, user: str, *remote: str, options: tuple[str, ...] = (), input: str | None = None):
    args = sandbox.ssh_args(user)
    return subprocess.run(
        [*args[:-1], *options, args[-1], *remote],
        input=input,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def tcp_probe(host: str, port: int, timeout: float = 3.0) -> str:
    """'open', 'refused' (the VM answered with a reset) or 'dropped' (no answer at all)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return "open"
    except ConnectionRefusedError:
        return "refused"
    except TimeoutError:
        return "dropped"


def test_second_site_run_changes_nothing(sandbox: Sandbox) -> None:
    run = sandbox.ansible_playbook("site.yml")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr
    recap = re.search(
        r"^sandbox\s+:\s+ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", run.stdout, re.M
    )
    assert recap, run.stdout[-2000:]
    assert recap.groups() == ("0", "0", "0"), run.stdout[-4000:]
    # Nothing the run uses is on its way out of ansible-core (2.20 and 2.21 remove what 2.19 warns of).
    warned = [line for line in (run.stdout + run.stderr).splitlines() if "DEPRECATION WARNING" in line]
    assert warned == [], warned
    # The run is in the VM's audit trail: who, when, what and the outcome.
    entry = last_audit_entry(sandbox)
    assert (entry["action"], entry["outcome"], entry["playbook"]) == ("site", "ok", "site.yml"), entry
    assert (entry["controller_user"], entry["controller"]) == (getpass.getuser(), socket.gethostname())
    assert entry["ansible_user"] == "deploy" and re.fullmatch(r"[0-9a-f]{12}", entry["release"]), entry
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", entry["time"]), entry


def last_audit_entry(sandbox: Sandbox) -> dict:
    return json.loads(sandbox.exec("tail", "-n", "1", "/var/log/tengen/audit.jsonl").stdout)


def test_a_failed_site_run_is_in_the_audit_trail(sandbox: Sandbox) -> None:
    # Another controller's run holds the change lock: site.yml stops before changing anything,
    # and its rescue records the failure.
    holder = {
        "token": "ops@ops-laptop.example.org:4242:1",
        "user": "ops",
        "controller": "ops-laptop.example.org",
        "pid": 4242,
        "playbook": "deploy.yml",
        "since": "2026-12-02T10:00:00Z",
    }
    lock = "/run/lock/tengen-change.lock"
    sandbox.exec("sh", "-c", f"cat > {lock}", input=json.dumps(holder).encode())
    try:
        run = sandbox.ansible_playbook("site.yml")
    finally:
        sandbox.exec("truncate", "-s", "0", lock)
    assert run.returncode != 0, run.stdout[-3000:]
    assert re.search(
        r"^sandbox\s+:\s+ok=\d+\s+changed=0\s+unreachable=0\s+failed=1\s+skipped=\d+\s+rescued=1",
        run.stdout,
        re.M,
    ), run.stdout[-3000:]
    entry = last_audit_entry(sandbox)
    assert (entry["action"], entry["outcome"], entry["playbook"]) == ("site", "failed", "site.yml"), entry
    assert entry["detail"].startswith("Take the change lock: "), entry
    assert "ops-laptop.example.org" in entry["detail"], entry


def test_the_provider_user_root_is_locked_and_refused_even_with_a_valid_key(sandbox: Sandbox) -> None:
    # site.yml logged in as root (the provider's first-login user here) on the first boot, then,
    # as deploy, took the operator's key away from it.
    assert sandbox.exec("test", "-e", "/root/.ssh/authorized_keys", check=False).returncode == 1
    # Given the key back, root is still refused: sshd's setting alone stops it.
    operator_key = sandbox.key.with_suffix(".pub").read_bytes()
    sandbox.exec(
        "sh", "-c", "umask 077 && mkdir -p /root/.ssh && cat >/root/.ssh/authorized_keys", input=operator_key
    )
    try:
        login = ssh(sandbox, "root", "true")
    finally:
        sandbox.exec("rm", "-f", "/root/.ssh/authorized_keys")
    assert login.returncode == 255
    assert "Permission denied" in login.stderr


def test_deploy_may_tunnel_in_the_sandbox(sandbox: Sandbox) -> None:
    # The sandbox inventory allows TCP forwarding for the tests' tunnels (off by default):
    # ssh -W opens the channel that -L opens, here to the VM's own sshd, which greets.
    tunnel = ssh(sandbox, "deploy", options=("-W", "127.0.0.1:22"), input="")
    assert tunnel.stdout.startswith("SSH-2.0-"), tunnel.stderr


def test_password_login_is_not_offered(sandbox: Sandbox) -> None:
    login = ssh(
        sandbox,
        "deploy",
        "true",
        options=(
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "PreferredAuthentications=password,keyboard-interactive",
        ),
    )
    assert login.returncode == 255
    # sshd lists the methods it still accepts: only publickey.
    assert "Permission denied (publickey)" in login.stderr


def test_deploy_logs_in_with_the_key_and_has_sudo(sandbox: Sandbox) -> None:
    login = ssh(sandbox, "deploy", "sudo", "-n", "id", "-u")
    assert login.returncode == 0, login.stderr
    assert login.stdout.strip() == "0"


@pytest.fixture(scope="module")
def vm_image(sandbox: Sandbox) -> str:
    """The slim base image, moved into the VM as an operator without a registry would."""
    image = "tengen/debian:trixie-slim"
    saved = subprocess.run(["docker", "save", image], capture_output=True, check=True).stdout
    sandbox.exec("docker", "load", input=saved)
    return image


def test_deploy_runs_a_compose_project(sandbox: Sandbox, vm_image: str) -> None:
    version = ssh(sandbox, "deploy", "docker", "compose", "version")
    assert version.returncode == 0, version.stderr
    assert re.search(r"v?2\.\d+", version.stdout), version.stdout
    compose = f"""
services:
  web:
    image: {vm_image}
    command: ["sh", "-c", "echo served >/tmp/index && exec sleep 60"]
  probe:
    image: {vm_image}
    depends_on: [web]
    command: ["getent", "hosts", "web"]
"""
    project = "ssh-deploy-check"
    up = ssh(
        sandbox,
        "deploy",
        f"mkdir -p {project} && cat >{project}/compose.yml && cd {project} && "
        "docker compose up -d web && docker compose run --rm probe; rc=$?; "
        "docker compose down -t 1; exit $rc",
        input=compose,
    )
    assert up.returncode == 0, up.stdout + up.stderr
    # service DNS on the project's network answered: inner containers get a network
    assert re.search(r"^\d+\.\d+\.\d+\.\d+\s+web", up.stdout, re.M), up.stdout + up.stderr


def test_firewall_admits_ssh_and_web_ports_and_drops_the_rest(sandbox: Sandbox) -> None:
    sandbox.exec("sh", "-c", "nohup python3 -m http.server 8081 >/dev/null 2>&1 &")
    try:
        for _ in range(50):  # the listener is up inside the VM
            if (
                sandbox.exec(
                    "python3",
                    "-c",
                    "import socket; socket.create_connection(('127.0.0.1', 8081))",
                    check=False,
                ).returncode
                == 0
            ):
                break
            time.sleep(0.1)
        else:
            pytest.fail("the test listener on 8081 did not start inside the VM")
        assert tcp_probe(sandbox.ip, 22) == "open"
        # 80 and 443 pass the firewall: a listener answers, or the kernel resets the connection
        assert tcp_probe(sandbox.ip, 80) in ("open", "refused")
        assert tcp_probe(sandbox.ip, 443) in ("open", "refused")
        # 8081 listens, yet from outside nothing answers
        assert tcp_probe(sandbox.ip, 8081) == "dropped"
        # a port nothing listens on is dropped too, not reset
        assert tcp_probe(sandbox.ip, 5432) == "dropped"
    finally:
        sandbox.exec("pkill", "-f", "http.server 8081", check=False)


def test_firewall_table_leaves_dockers_rules_alone(sandbox: Sandbox) -> None:
    tables = sandbox.exec("nft", "list", "tables").stdout.decode()
    assert "table inet tengen_filter" in tables
    # Docker's NAT for published ports survives our firewall (iptables-nft tables)
    assert "table ip nat" in tables


def test_swap_file_and_sysctls_are_in_place(sandbox: Sandbox) -> None:
    assert sandbox.exec("swaplabel", "/swapfile", check=False).returncode == 0
    assert "/swapfile none swap sw" in sandbox.exec("cat", "/etc/fstab").stdout.decode()
    settings = sandbox.exec("cat", "/etc/sysctl.d/60-tengen.conf").stdout.decode()
    assert "net.core.somaxconn=4096" in settings
    assert "vm.swappiness=10" in settings
    # Raising nofile needs CAP_SYS_RESOURCE, which a container lacks: the sandbox shows the
    # configuration that a VM applies at login and at boot, not the effective limit.
    limits = sandbox.exec("cat", "/etc/security/limits.d/60-tengen.conf").stdout.decode()
    assert re.search(r"^\*\s+hard\s+nofile\s+1048576$", limits, re.M), limits
    manager = sandbox.exec("cat", "/etc/systemd/system.conf.d/60-tengen-limits.conf").stdout.decode()
    assert "DefaultLimitNOFILE=1048576" in manager
