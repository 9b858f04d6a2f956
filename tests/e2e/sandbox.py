"""The sandbox VM as the end-to-end tests see it (the fixture lives in conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import REPO

ANSIBLE_BIN = Path(sys.executable).parent


def ansible_env() -> dict[str, str]:
    # The project's ansible.cfg and roles, also where a caller (molecule's verifier) set its own.
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(REPO / "roles"),
        "ANSIBLE_FORCE_COLOR": "0",
    }
    env["PATH"] = f"{ANSIBLE_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def run_playbook(
    inventory: Path | str | None, playbook: str | Path, *extra_args: str, timeout: float | None = None
) -> subprocess.CompletedProcess:
    cmd = [str(ANSIBLE_BIN / "ansible-playbook")]
    if inventory is not None:
        cmd += ["-i", str(inventory)]
    cmd += [str(playbook), *extra_args]
    return subprocess.run(
        cmd, cwd=REPO, env=ansible_env(), capture_output=True, text=True, check=False, timeout=timeout
    )


@dataclass
class Sandbox:
    """A running sandbox VM with site.yml applied."""

    container: str  # Docker container name
    ssh_port: int  # 127.0.0.1:ssh_port -> VM:22
    http_port: int  # 127.0.0.1:http_port -> VM:80
    https_port: int  # 127.0.0.1:https_port -> VM:443
    inventory: Path  # an inventory directory that reaches this VM as the deploy user
    ip: str  # the container's address on Docker's bridge (reaches every VM port, firewall permitting)
    key: Path  # the operator's private key (deploy accepts it; root did on first boot)
    known_hosts: Path  # the VM's host key, for ssh -o UserKnownHostsFile=

    def exec(self, *cmd: str, input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess:
        """Run a command inside the VM as root (`docker exec -i`); output is captured as bytes."""
        return subprocess.run(
            ["docker", "exec", "-i", self.container, *cmd], input=input, capture_output=True, check=check
        )

    def ansible_playbook(self, playbook: str | Path, *extra_args: str) -> subprocess.CompletedProcess:
        """Run ansible-playbook (from the repository root) on this VM; output is captured as text."""
        return run_playbook(self.inventory, playbook, *extra_args)

    def ssh_args(self, user: str) -> list[str]:
        """An ssh command line (without the remote command) that logs in as `user` with the key."""
        return [
            "ssh",
            "-p",
            str(self.ssh_port),
            "-i",
            str(self.key),
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=10",
            f"{user}@127.0.0.1",
        ]
