"""Playbooks parse, and bad input stops a role before any change, naming the variable.

The roles run against this machine with `connection: local` and in check mode: validation is
their first step, so a failing run has touched nothing, and check mode guards the host should a
validation ever let bad input through.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

ANSIBLE_BIN = Path(sys.executable).parent
GOOD_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMPeXPwm+UwUpAp6MA5Ar0/ekqBPX075nFd69Of1ocLK unit-test"


def ansible_playbook(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(REPO / "roles"),
    }
    env["ANSIBLE_COLLECTIONS_PATH"] = str(REPO / "collections")
    env["ANSIBLE_NOCOLOR"] = "1"
    return subprocess.run(
        [str(ANSIBLE_BIN / "ansible-playbook"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize("playbook", ["site.yml", "playbooks/sandbox.yml"])
def test_playbook_syntax(playbook: str) -> None:
    run = ansible_playbook("--syntax-check", "-i", "localhost,", playbook)
    assert run.returncode == 0, run.stdout + run.stderr


def run_role(tmp_path: Path, role: str, variables: dict) -> subprocess.CompletedProcess:
    play = tmp_path / "play.yml"
    play.write_text(
        json.dumps(
            [{"name": "Validate", "hosts": "localhost", "connection": "local", "roles": [{"role": role}]}]
        )
    )
    extra = tmp_path / "vars.json"
    extra.write_text(json.dumps({"ansible_python_interpreter": sys.executable, **variables}))
    return ansible_playbook("--check", "-i", "localhost,", "-e", f"@{extra}", str(play))


def assert_refused(run: subprocess.CompletedProcess, variable: str) -> None:
    output = run.stdout + run.stderr
    assert run.returncode != 0, output
    failure = output[output.find("fatal:") :]
    assert "fatal:" in output and variable in failure, output
    recap = re.search(r"^localhost\s+:\s+ok=\d+\s+changed=(\d+)", run.stdout, re.M)
    assert recap and recap.group(1) == "0", output


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"base_deploy_user": "Bad User", "base_deploy_ssh_public_keys": [GOOD_KEY]}, "base_deploy_user"),
        ({"base_deploy_user": "root", "base_deploy_ssh_public_keys": [GOOD_KEY]}, "base_deploy_user"),
        ({}, "base_deploy_ssh_public_keys"),
        ({"base_deploy_ssh_public_keys": []}, "base_deploy_ssh_public_keys"),
        ({"base_deploy_ssh_public_keys": ["not a key"]}, "base_deploy_ssh_public_keys"),
        ({"base_deploy_ssh_public_keys": [GOOD_KEY], "base_swap_size": "lots"}, "base_swap_size"),
        ({"base_deploy_ssh_public_keys": [GOOD_KEY], "base_swap_size": "1.5G"}, "base_swap_size"),
        ({"base_deploy_ssh_public_keys": [GOOD_KEY], "base_swap_enabled": "maybe"}, "base_swap_enabled"),
        (
            {"base_deploy_ssh_public_keys": [GOOD_KEY], "base_firewall_allowed_tcp_ports": [80, 443]},
            "base_firewall_allowed_tcp_ports",
        ),
        (
            {"base_deploy_ssh_public_keys": [GOOD_KEY], "base_supported_os": {"NoSuchOS": ["1"]}},
            "base_supported_os",
        ),
    ],
    ids=[
        "user-name-with-space",
        "user-root",
        "key-missing",
        "key-list-empty",
        "key-not-openssh",
        "swap-size-word",
        "swap-size-fraction",
        "swap-enabled-not-bool",
        "firewall-without-ssh",
        "unsupported-os",
    ],
)
def test_base_refuses_bad_input(tmp_path: Path, variables: dict, named: str) -> None:
    assert_refused(run_role(tmp_path, "base", variables), named)


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"docker_engine_source": "podman"}, "docker_engine_source"),
        ({"docker_engine_log_max_size": "big"}, "docker_engine_log_max_size"),
        ({"docker_engine_log_max_file": 0}, "docker_engine_log_max_file"),
        ({"docker_engine_live_restore": "sometimes"}, "docker_engine_live_restore"),
    ],
    ids=["source-unknown", "log-size-word", "log-files-zero", "live-restore-not-bool"],
)
def test_docker_engine_refuses_bad_input(tmp_path: Path, variables: dict, named: str) -> None:
    assert_refused(run_role(tmp_path, "docker_engine", variables), named)


def test_sandbox_playbook_refuses_an_unknown_state() -> None:
    run = ansible_playbook("playbooks/sandbox.yml", "-i", "localhost,", "-e", "state=gone")
    assert_refused(run, "state must be present or absent")
