"""Run the scale-out playbooks as an operator would, and read what they reported."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e.sandbox import ANSIBLE_BIN, ansible_env

REPO = Path(__file__).resolve().parent.parent
PLAYBOOKS = REPO / "playbooks" / "scale-out"
INVENTORY = REPO / "inventories" / "aws"
MOTO_VARS = REPO / "tests" / "aws" / "moto-vars.yml"


@dataclass
class Run:
    rc: int
    output: str
    changed_tasks: list[str] = field(default_factory=list)
    failed_tasks: list[str] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return sum(int(n) for n in re.findall(r"^\S+\s+:.*?changed=(\d+)", self.output, re.M))


def run_playbook(
    name: str,
    endpoint: str,
    extra: dict[str, object] | None = None,
    check: bool = False,
    moto: bool = True,
    inventories: tuple[Path, ...] = (),
) -> Run:
    """ansible-playbook playbooks/scale-out/<name> against endpoint, with throwaway credentials.

    `inventories` are added to inventories/aws (the sandbox VM's, for rehearse.yml).
    """
    env = {
        **ansible_env(),
        "ANSIBLE_NOCOLOR": "1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_URL": endpoint,
    }
    env.pop("AWS_PROFILE", None)
    cmd = [
        str(ANSIBLE_BIN / "ansible-playbook"),
        "-i",
        str(INVENTORY),
        *(arg for inventory in inventories for arg in ("-i", str(inventory))),
        str(PLAYBOOKS / name),
        "-e",
        f"scale_out_endpoint_url={endpoint}",
    ]
    if moto:
        cmd += ["-e", f"@{MOTO_VARS}"]
    if extra:
        cmd += ["-e", json.dumps(extra)]
    if check:
        cmd.append("--check")
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    run = Run(proc.returncode, out)
    task = ""
    for line in out.splitlines():
        if line.startswith("TASK ["):
            task = line[6:].split("]")[0]
        elif line.startswith("changed:") and (not run.changed_tasks or run.changed_tasks[-1] != task):
            run.changed_tasks.append(task)
        elif line.startswith(("fatal:", "failed:")) and task not in run.failed_tasks:
            run.failed_tasks.append(task)
    return run
