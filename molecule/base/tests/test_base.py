"""Role base, seen from inside the VM (sshd -T, nft) and from outside (TCP probes)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest

CONTAINER = "tengen-mol-base"
# The operator's key, made by prepare: deploy accepts it, and admin (the provider's user) did.
OPERATOR_KEY = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "operator"


def vm_address() -> str:
    return subprocess.run(
        ["docker", "inspect", "--format", "{{.NetworkSettings.IPAddress}}", CONTAINER],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def ssh(user: str, *remote: str, keys: tuple[Path, ...] = (OPERATOR_KEY,), options: tuple[str, ...] = ()):
    """ssh from the host, offering exactly `keys` in that order (no agent)."""
    cmd = ["ssh", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=10"]
    cmd += ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
    for key in keys:
        cmd += ["-i", str(key)]
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    return subprocess.run(
        [*cmd, *options, f"{user}@{vm_address()}", *remote],
        input="",
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def probe(port: int) -> str:
    address = vm_address()
    try:
        with socket.create_connection((address, port), timeout=3):
            return "open"
    except ConnectionRefusedError:
        return "refused"
    except TimeoutError:
        return "dropped"


def test_sshd_effective_configuration_refuses_root_and_passwords(host):
    effective = host.check_output("/usr/sbin/sshd -T")
    assert "permitrootlogin no" in effective
    assert "passwordauthentication no" in effective
    assert "kbdinteractiveauthentication no" in effective
    assert "authenticationmethods publickey" in effective
    assert host.service("ssh").is_running


def test_sshd_refuses_forwarding_and_allows_several_keys(host):
    effective = host.check_output("/usr/sbin/sshd -T")
    assert "allowtcpforwarding no" in effective
    assert "allowstreamlocalforwarding no" in effective
    assert "maxauthtries 10" in effective


def test_deploy_logs_in_when_the_agent_offers_other_keys_first(tmp_path):
    # Five keys the VM does not know, then the right one: each refused key costs one try.
    others = []
    for number in range(5):
        key = tmp_path / f"other{number}"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        others.append(key)
    login = ssh("deploy", "sudo", "-n", "id", "-u", keys=(*others, OPERATOR_KEY))
    assert login.returncode == 0, login.stderr
    assert login.stdout.strip() == "0"


def test_deploy_cannot_open_tunnels():
    # ssh -W opens the same direct-tcpip channel as -L; sshd says no.
    local = ssh("deploy", options=("-W", "127.0.0.1:22"))
    assert local.returncode != 0
    assert "administratively prohibited" in local.stderr, local.stderr
    assert "SSH-2.0" not in local.stdout
    remote = ssh(
        "deploy", "true", options=("-o", "ExitOnForwardFailure=yes", "-R", "127.0.0.1:4022:127.0.0.1:22")
    )
    assert remote.returncode == 255
    assert "remote port forwarding failed" in remote.stderr, remote.stderr


def test_provider_user_is_locked(host):
    # prepare gave admin the operator's key, a password, the sudo group and cloud-init's sudo rule;
    # converge logged in as admin first, then as deploy.
    login = ssh("admin", "true")
    assert login.returncode == 255
    assert "Permission denied" in login.stderr, login.stderr
    assert not host.file("/home/admin/.ssh/authorized_keys").exists
    assert host.check_output("passwd -S admin").split()[1] == "L"
    assert "sudo" not in host.check_output("id -nG admin").split()
    assert not re.search(r"^\s*admin\s", host.file("/etc/sudoers.d/90-cloud-init-users").content_string, re.M)
    assert host.run("runuser -u admin -- sudo -n true").rc != 0
    # the deploy user, through whom the lock ran, keeps its key and sudo
    assert ssh("deploy", "sudo", "-n", "true").returncode == 0


def test_deploy_user_has_the_key_and_passwordless_sudo(host):
    deploy = host.user("deploy")
    assert deploy.exists
    keys = host.file("/home/deploy/.ssh/authorized_keys")
    assert keys.user == "deploy" and keys.mode == 0o600
    assert "molecule-no-private-key" in keys.content_string
    assert host.run("runuser -u deploy -- sudo -n true").rc == 0


def test_firewall_table_is_loaded_and_survives_a_reload(host):
    ruleset = host.check_output("nft list table inet tengen_filter")
    assert "policy drop" in ruleset
    assert "tcp dport { 22, 80, 443 } accept" in ruleset
    host.run_expect([0], "systemctl reload tengen-firewall.service")
    assert host.run("nft list tables").stdout.count("tengen_filter") == 1


def test_firewall_admits_ssh_and_drops_other_ports(host):
    host.run("sh -c 'nohup python3 -m http.server 8081 >/dev/null 2>&1 &'")
    try:
        for _ in range(50):
            if host.socket("tcp://0.0.0.0:8081").is_listening:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the test listener on 8081 did not start")
        assert probe(22) == "open"
        assert probe(80) == "refused"  # admitted, nothing listens
        assert probe(8081) == "dropped"  # listens, yet never answers from outside
    finally:
        host.run("pkill -f 'http.server 8081'")


def test_unattended_upgrades_take_security_updates_only(host):
    config = host.check_output("apt-config dump Unattended-Upgrade::Origins-Pattern")
    assert "label=Debian-Security" in config
    assert 'label=Debian"' not in config
    assert 'APT::Periodic::Unattended-Upgrade "1"' in host.check_output("apt-config dump APT::Periodic")


def test_swap_file_is_ready_and_sysctls_are_written(host):
    swap = host.file("/swapfile")
    assert swap.mode == 0o600 and swap.size == 32 * 1024 * 1024
    assert host.run("swaplabel /swapfile").rc == 0
    assert "/swapfile none swap sw" in host.file("/etc/fstab").content_string
    settings = host.file("/etc/sysctl.d/60-tengen.conf").content_string
    assert "net.core.somaxconn=4096" in settings
    assert "net.ipv4.ip_local_port_range=10240 65000" in settings


def test_journald_is_capped(host):
    assert "SystemMaxUse=200M" in host.file("/etc/systemd/journald.conf.d/60-tengen.conf").content_string
    assert host.service("systemd-journald").is_running
