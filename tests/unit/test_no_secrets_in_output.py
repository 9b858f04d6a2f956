"""No task whose result can hold a secret runs without no_log, in any role or playbook.

A result is printed whenever the run is verbose (-v) or the task fails, registered or not: the
task itself must carry no_log (or sit in a block or play that does). A task is secret-bearing
when its module returns a container's environment, a file or command output that holds one,
credentials, or a request made with credentials, or when it writes a secret file (--diff prints
its content); SECRET_BEARING below.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO

# Keys of a task that are not its module.
TASK_KEYWORDS = {
    "name", "register", "when", "no_log", "loop", "loop_control", "tags", "become", "become_user",
    "become_method", "vars", "changed_when", "failed_when", "until", "retries", "delay", "notify",
    "listen", "environment", "delegate_to", "delegate_facts", "run_once", "check_mode", "diff",
    "ignore_errors", "ignore_unreachable", "args", "throttle", "timeout", "module_defaults",
    "any_errors_fatal", "connection", "collections", "debugger", "async", "poll", "block",
    "rescue", "always", "action", "local_action",
}  # fmt: skip
NESTED = ("block", "rescue", "always")
PLAY_SECTIONS = ("pre_tasks", "roles", "tasks", "post_tasks", "handlers")

# What reads an environment: env/printenv, docker inspect, an env file, /proc/*/environ.
_READS_ENV = re.compile(
    r"(^|[\s;|&(])(env|printenv)(\s|$)|docker\s+(container\s+)?inspect|\.env\b|/proc/\S+/environ"
)
_SECRET_PATH = re.compile(r"\.env\b|secret|token|password|credential|vault|id_[a-z0-9]+$|\.key$|\.pem$", re.I)
_AUTH_HEADER = re.compile(
    r"^(authorization|proxy-authorization|cookie|x-[\w-]*(token|key|auth)[\w-]*)$", re.I
)


def _command_text(args: Any) -> str:
    if isinstance(args, str):
        return args
    if isinstance(args, dict):
        parts = [args.get(k) for k in ("cmd", "argv", "command", "_raw_params")]
        return " ".join(" ".join(map(str, p)) if isinstance(p, list) else str(p) for p in parts if p)
    return ""


def _has(*keys: str) -> Callable[[Any], bool]:
    return lambda args: isinstance(args, dict) and any(args.get(k) not in (None, "", [], {}) for k in keys)


def _uri_with_credentials(args: Any) -> bool:
    if not isinstance(args, dict):
        return False
    headers = args.get("headers") or {}
    return bool(args.get("url_password") or args.get("force_basic_auth")) or any(
        _AUTH_HEADER.match(str(h)) for h in headers
    )


# Module (also as ansible.builtin.X, short names are normalised) -> whether this use holds a secret.
SECRET_BEARING: dict[str, Callable[[Any], bool]] = {
    # A container's details: Config.Env holds every variable it was given.
    "community.docker.docker_container_info": lambda args: True,
    "community.docker.docker_container": _has("env", "env_file"),
    "community.docker.docker_compose_v2": _has("definition", "env_files"),
    # Files that hold secrets, read back into the result.
    "ansible.builtin.slurp": lambda args: bool(_SECRET_PATH.search(str((args or {}).get("src", "")))),
    # Files written with secrets: --diff prints their content.
    "ansible.builtin.template": lambda args: bool(_SECRET_PATH.search(str((args or {}).get("dest", "")))),
    "ansible.builtin.copy": lambda args: bool(_SECRET_PATH.search(str((args or {}).get("dest", "")))),
    # Command output that prints an environment.
    "ansible.builtin.command": lambda args: bool(_READS_ENV.search(_command_text(args))),
    "ansible.builtin.shell": lambda args: bool(_READS_ENV.search(_command_text(args))),
    "community.docker.docker_container_exec": lambda args: bool(_READS_ENV.search(_command_text(args))),
    # Requests made with credentials (and what such an endpoint answers).
    "ansible.builtin.uri": _uri_with_credentials,
    # Modules whose results carry credentials.
    "tengen.ops.ecr_authorization": lambda args: True,
    "tengen.ops.ecs_rehearsal_plan": lambda args: True,
    "tengen.ops.elasticache_replication_group": _has("auth_token"),
    "amazon.aws.rds_instance": _has("master_user_password"),
    "community.aws.secretsmanager_secret": _has("secret", "json_secret"),
    "amazon.aws.secretsmanager_secret": _has("secret", "json_secret"),
    "community.docker.docker_login": _has("password"),
}
SHORT_NAMES = {name.rsplit(".", 1)[1]: name for name in SECRET_BEARING if name.startswith("ansible.builtin.")}


def task_files() -> list[Path]:
    files = [REPO / "site.yml", *(REPO / "playbooks").rglob("*.yml")]
    for role in sorted((REPO / "roles").iterdir()):
        files += [p for sub in ("tasks", "handlers") for p in (role / sub).rglob("*.yml")]
    return sorted(files)


def walk(tasks: Any, no_log: bool) -> Iterator[tuple[dict, bool]]:
    """Each task with whether no_log holds for it (set on it, a block around it, or the play)."""
    for task in tasks if isinstance(tasks, list) else []:
        if not isinstance(task, dict):
            continue
        hidden = no_log or task.get("no_log") is True
        if any(k in task for k in NESTED):
            for key in NESTED:
                yield from walk(task.get(key), hidden)
            continue
        if "hosts" in task or "import_playbook" in task:  # a play
            for key in PLAY_SECTIONS:
                yield from walk(task.get(key), hidden)
            continue
        yield task, hidden


def module_of(task: dict) -> tuple[str, Any]:
    for key, args in task.items():
        if key not in TASK_KEYWORDS and not key.startswith("with_"):
            return SHORT_NAMES.get(key, key), args if args is not None else task.get("args")
    return "", None


def secret_bearing_tasks() -> list[tuple[str, str, str, bool]]:
    """(file, task name, module, no_log) for every task whose result can hold a secret."""
    found = []
    for path in task_files():
        data = yaml.safe_load(path.read_text())
        for task, hidden in walk(data, False):
            module, args = module_of(task)
            if module in SECRET_BEARING and SECRET_BEARING[module](args):
                found.append((str(path.relative_to(REPO)), task.get("name", "?"), module, hidden))
    return found


def test_every_task_whose_result_can_hold_a_secret_runs_with_no_log():
    exposed = [
        f"{path}: {name} ({module})" for path, name, module, hidden in secret_bearing_tasks() if not hidden
    ]
    assert exposed == [], "results that can hold a secret are printed (no no_log):\n" + "\n".join(exposed)


def test_the_scan_finds_the_known_secret_bearing_tasks():
    # A scan that finds nothing would pass the test above for nothing.
    found = {(path, module) for path, _, module, _ in secret_bearing_tasks()}
    assert {
        ("roles/game_stack/tasks/release.yml", "community.docker.docker_container_info"),
        ("roles/aws_rehearsal/tasks/datastores.yml", "community.docker.docker_container_info"),
        ("roles/game_stack/tasks/configure.yml", "ansible.builtin.template"),
        ("roles/aws_rehearsal/tasks/replicas.yml", "community.docker.docker_container"),
        ("roles/aws_images/tasks/login.yml", "tengen.ops.ecr_authorization"),
        ("roles/aws_data/tasks/database.yml", "amazon.aws.rds_instance"),
    } <= found


@pytest.mark.parametrize(
    ("task_yaml", "secret_bearing"),
    [
        ("- community.docker.docker_container_info: {name: x}\n  register: r", True),
        ("- ansible.builtin.slurp: {src: /opt/tengen/backend.env}\n  register: r", True),
        ("- slurp: {src: /proc/swaps}\n  register: r", False),
        ("- ansible.builtin.command: {argv: [docker, exec, c, printenv]}\n  register: r", True),
        ("- ansible.builtin.shell: cat /opt/tengen/engine.env\n  register: r", True),
        ("- ansible.builtin.command: {argv: [swaplabel, /swapfile]}\n  register: r", False),
        ("- community.docker.docker_container_exec: {container: c, argv: [env]}\n  register: r", True),
        ("- ansible.builtin.uri: {url: http://x, headers: {Authorization: Bearer t}}\n  register: r", True),
        ("- ansible.builtin.uri: {url: http://x, headers: {Accept: text/plain}}\n  register: r", False),
        ("- community.docker.docker_container: {name: c, env: {A: b}}", True),
        ("- community.docker.docker_container: {name: c, state: absent}", False),
    ],
)
def test_the_rules_tell_secret_bearing_uses_apart(task_yaml, secret_bearing):
    (task, hidden), *_ = walk(yaml.safe_load(task_yaml), False)
    module, args = module_of(task)
    assert (module in SECRET_BEARING and SECRET_BEARING[module](args)) is secret_bearing
    assert hidden is False


def test_no_log_on_an_enclosing_block_or_play_covers_its_tasks():
    play = yaml.safe_load(
        """
- hosts: all
  tasks:
    - block:
        - community.docker.docker_container_info: {name: x}
      rescue:
        - community.docker.docker_container_info: {name: y}
      no_log: true
    - community.docker.docker_container_info: {name: z}
      no_log: true
    - community.docker.docker_container_info: {name: w}
"""
    )
    assert [hidden for _, hidden in walk(play, False)] == [True, True, True, False]
