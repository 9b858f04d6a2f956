"""Run one module of the collection as Ansible runs it (ad hoc, on localhost) and return its result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def run_module(
    module: str,
    args: dict,
    check: bool = False,
    verbosity: int = 0,
    timeout: float = 120,
    extra: tuple[str, ...] = (),
) -> tuple[dict, str]:
    """The module's result for localhost and the whole output (to look for leaked secrets)."""
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
    }
    cmd = [
        str(Path(sys.executable).parent / "ansible"),
        "localhost",
        "-i",
        "localhost,",
        "-c",
        "local",
        "-e",
        f"ansible_python_interpreter={sys.executable}",
        "-m",
        module,
        "-a",
        json.dumps(args),
    ]
    cmd += extra
    if check:
        cmd.append("--check")
    if verbosity:
        cmd.append("-" + "v" * verbosity)
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    output, _ = json.JSONDecoder().raw_decode(proc.stdout[proc.stdout.index("{") :])
    return output["plays"][0]["tasks"][0]["hosts"]["localhost"], proc.stdout + proc.stderr


def template(expr: str, *extra: str) -> object:
    """What Ansible makes of a Jinja expression on localhost (through ansible.builtin.debug);
    `extra` are more ansible arguments, such as -e with variables."""
    result, output = run_module("ansible.builtin.debug", {"msg": expr}, extra=extra)
    assert "msg" in result and not result.get("failed"), output[-3000:]
    return result["msg"]
