"""tengen.ops.ecr_authorization through Ansible against moto_server's ECR GetAuthorizationToken.

The password must reach the next task as it is (docker_login needs it), and never show in the
output: the tasks run with no_log: true, as roles/aws_images/tasks/login.yml runs them.
"""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from tests.e2e.sandbox import ANSIBLE_BIN, ansible_env

pytestmark = pytest.mark.aws

REPO = Path(__file__).resolve().parent.parent.parent

PLAYBOOK = """
- name: Hand an ECR login from one task to the next
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Get an ECR login
      tengen.ops.ecr_authorization:
        region: eu-west-1
        endpoint_url: "{{ endpoint }}"
      register: ecr
      no_log: true

    - name: Write what the next task receives
      ansible.builtin.copy:
        content: "{{ ecr.registry }} {{ ecr.username }}:{{ ecr.password }}"
        dest: "{{ received }}"
        mode: "0600"
      no_log: true
"""


def test_the_next_task_receives_the_real_password_and_the_output_never_shows_it(
    aws_env: str, tmp_path: Path
) -> None:
    playbook = tmp_path / "login.yml"
    playbook.write_text(PLAYBOOK)
    received = tmp_path / "received"
    proc = subprocess.run(
        [
            str(ANSIBLE_BIN / "ansible-playbook"),
            "-i",
            "localhost,",
            "-c",
            "local",
            "-v",
            str(playbook),
            "-e",
            f"endpoint={aws_env} received={received} ansible_python_interpreter={sys.executable}",
        ],
        cwd=REPO,
        env=ansible_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    # What ECR hands out, decoded here independently of the module.
    data = boto3.client("ecr").get_authorization_token()["authorizationData"][0]
    username, password = base64.b64decode(data["authorizationToken"]).decode().split(":", 1)
    registry = data["proxyEndpoint"].removeprefix("https://")
    assert received.read_text() == f"{registry} {username}:{password}"
    assert "********" not in received.read_text()
    assert password not in output and data["authorizationToken"] not in output
