"""Playbooks parse, and bad input stops a role before any change, naming the variable.

The roles run against this machine with `connection: local` and in check mode: validation is
their first step, so a failing run has touched nothing, and check mode guards the host should a
validation ever let bad input through. Each bad input is one inventory host (an alias of
localhost with its own variables), so one ansible-playbook run per role covers every case.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

ANSIBLE_BIN = Path(sys.executable).parent
GOOD_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMPeXPwm+UwUpAp6MA5Ar0/ekqBPX075nFd69Of1ocLK unit-test"

BASE_CASES = {
    "user-name-with-space": ({"base_deploy_user": "Bad User"}, "base_deploy_user"),
    "user-root": ({"base_deploy_user": "root"}, "base_deploy_user"),
    "key-missing": ({"base_deploy_ssh_public_keys": None}, "base_deploy_ssh_public_keys"),
    "key-list-empty": ({"base_deploy_ssh_public_keys": []}, "base_deploy_ssh_public_keys"),
    "key-not-openssh": ({"base_deploy_ssh_public_keys": ["not a key"]}, "base_deploy_ssh_public_keys"),
    "swap-size-word": ({"base_swap_size": "lots"}, "base_swap_size"),
    "swap-size-fraction": ({"base_swap_size": "1.5G"}, "base_swap_size"),
    "journal-cap-word": ({"base_journald_system_max_use": "plenty"}, "base_journald_system_max_use"),
    "swap-enabled-not-bool": ({"base_swap_enabled": "maybe"}, "base_swap_enabled"),
    "firewall-without-ssh": (
        {"base_firewall_allowed_tcp_ports": [80, 443]},
        "base_firewall_allowed_tcp_ports",
    ),
    "unsupported-os": ({"base_supported_os": {"NoSuchOS": ["1"]}}, "base_supported_os"),
}
DOCKER_ENGINE_CASES = {
    "source-unknown": ({"docker_engine_source": "podman"}, "docker_engine_source"),
    "log-size-word": ({"docker_engine_log_max_size": "big"}, "docker_engine_log_max_size"),
    "log-files-zero": ({"docker_engine_log_max_file": 0}, "docker_engine_log_max_file"),
    "live-restore-not-bool": ({"docker_engine_live_restore": "sometimes"}, "docker_engine_live_restore"),
}


def ansible_playbook(*args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(REPO / "roles"),
        "ANSIBLE_COLLECTIONS_PATH": str(REPO / "collections"),
        "ANSIBLE_NOCOLOR": "1",
    }
    return subprocess.run(
        [str(ANSIBLE_BIN / "ansible-playbook"), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.parametrize("playbook", ["site.yml", "playbooks/sandbox.yml"])
def test_playbook_syntax(playbook: str) -> None:
    run = ansible_playbook("--syntax-check", "-i", "localhost,", playbook)
    assert run.returncode == 0, run.stdout + run.stderr


def run_cases(tmp_path: Path, role: str, cases: dict, defaults: dict) -> dict[str, str]:
    """Run `role` once per case (one host each, in check mode); return each host's output."""
    hosts = {}
    for name, (variables, _) in cases.items():
        host_vars = {**defaults, **variables}
        hosts[name] = {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            **{key: value for key, value in host_vars.items() if value is not None},
        }
    inventory = tmp_path / "hosts.json"
    inventory.write_text(json.dumps({"all": {"hosts": hosts}}))
    play = tmp_path / "play.yml"
    play.write_text(
        json.dumps(
            [
                {
                    "name": "Validate",
                    "hosts": "all",
                    "gather_subset": ["!all"],  # the OS checks need only the distribution
                    "roles": [{"role": role}],
                }
            ]
        )
    )
    run = ansible_playbook("--check", "--forks", "20", "-i", str(inventory), str(play))
    output = run.stdout + run.stderr
    results = {}
    for name in cases:
        fatal = re.search(rf"^fatal: \[{re.escape(name)}\]: FAILED! => (.*?)(?=^\S)", output, re.M | re.S)
        recap = re.search(rf"^{re.escape(name)}\s+:\s+ok=\d+\s+changed=(\d+).*failed=(\d+)", output, re.M)
        results[name] = {
            "fatal": fatal.group(1) if fatal else "",
            "changed": recap.group(1) if recap else None,
            "failed": recap.group(2) if recap else None,
            "output": output,
        }
    return results


@pytest.fixture(scope="module")
def base_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    defaults = {"base_deploy_ssh_public_keys": [GOOD_KEY]}
    return run_cases(tmp_path_factory.mktemp("base"), "base", BASE_CASES, defaults)


@pytest.fixture(scope="module")
def docker_engine_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    return run_cases(tmp_path_factory.mktemp("docker_engine"), "docker_engine", DOCKER_ENGINE_CASES, {})


def assert_refused(result: dict, variable: str) -> None:
    assert result["failed"] == "1", result["output"][-3000:]
    assert variable in result["fatal"], result["fatal"] or result["output"][-3000:]
    assert result["changed"] == "0", result["output"][-3000:]


@pytest.mark.parametrize("case", BASE_CASES)
def test_base_refuses_bad_input(base_results: dict, case: str) -> None:
    assert_refused(base_results[case], BASE_CASES[case][1])


@pytest.mark.parametrize("case", DOCKER_ENGINE_CASES)
def test_docker_engine_refuses_bad_input(docker_engine_results: dict, case: str) -> None:
    assert_refused(docker_engine_results[case], DOCKER_ENGINE_CASES[case][1])


def test_sandbox_playbook_refuses_an_unknown_state() -> None:
    run = ansible_playbook("playbooks/sandbox.yml", "-i", "localhost,", "-e", "state=gone")
    assert run.returncode != 0
    assert "state must be present or absent" in run.stdout, run.stdout[-3000:]
    assert re.search(r"^localhost\s+:\s+ok=\d+\s+changed=0\s", run.stdout, re.M), run.stdout[-3000:]


def test_a_role_step_without_a_condition_is_imported() -> None:
    # Static steps show in --list-tasks and take tags and --start-at-task; include_tasks is kept
    # for what only a run can decide (when, loop, vars, a templated file name).
    dynamic = []
    for path in sorted((REPO / "roles").glob("*/tasks/*.yml")):
        stack = list(yaml.safe_load(path.read_text()) or [])
        while stack:
            task = stack.pop()
            stack.extend(task.get("block", []) + task.get("rescue", []) + task.get("always", []))
            target = task.get("ansible.builtin.include_tasks")
            if target and set(task) == {"name", "ansible.builtin.include_tasks"} and "{{" not in target:
                dynamic.append(f"{path.relative_to(REPO)}: {target}")
    assert dynamic == []


def test_site_lists_the_tasks_of_its_roles() -> None:
    run = ansible_playbook("--list-tasks", "-i", "localhost,", "site.yml")
    assert run.returncode == 0, run.stdout + run.stderr
    for task in (
        "validate | Check the deploy user's name and keys",
        "resolve | Name our images after their build contexts",
        "validate | Check the retention counts and the restore's bounds",
    ):
        assert task in run.stdout, f"{task!r} is not in site.yml --list-tasks"
