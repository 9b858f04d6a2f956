"""Role docker_engine: the engine as configured, used by the deploy user with Compose."""

from __future__ import annotations

import json
import subprocess

import pytest

CONTAINER = "tengen-mol-docker-engine"
IMAGE = "tengen/debian:trixie-slim"


@pytest.fixture(scope="module")
def image_loaded(host) -> str:
    """No registry answers here: move the slim image into the VM as an operator would."""
    saved = subprocess.run(["docker", "save", IMAGE], capture_output=True, check=True).stdout
    load = ["docker", "exec", "-i", CONTAINER, "docker", "load"]
    subprocess.run(load, input=saved, capture_output=True, check=True)
    return IMAGE


def test_daemon_json_is_effective(host):
    info = json.loads(host.check_output("docker info --format '{{json .}}'"))
    assert info["LoggingDriver"] == "json-file"
    assert info["LiveRestoreEnabled"] is True
    config = json.loads(host.file("/etc/docker/daemon.json").content_string)
    assert config["log-opts"] == {"max-size": "20m", "max-file": "3"}


def test_ipv6_drop_in_reaches_dockerd(host):
    env = host.check_output("systemctl show docker.service --property=Environment")
    assert "DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE=1" in env
    assert host.service("docker").is_enabled and host.service("docker").is_running


def test_deploy_runs_a_container_with_compose(host, image_loaded):
    assert "deploy" in host.user("deploy").groups
    compose = (
        f"services:\n  web:\n    image: {image_loaded}\n    command: [sleep, '60']\n"
        f"  probe:\n    image: {image_loaded}\n    depends_on: [web]\n    command: [getent, hosts, web]\n"
    )
    host.run("install -d -o deploy /home/deploy/check")
    host.run(f'printf %s "{compose}" > /home/deploy/check/compose.yml')
    run = host.run(
        "cd /home/deploy/check && runuser -u deploy -- sh -c "
        "'docker compose up -d web && docker compose run --rm probe; rc=$?; "
        "docker compose down -t 1; exit $rc'"
    )
    assert run.rc == 0, run.stdout + run.stderr
    assert " web" in run.stdout  # service DNS answered on the project's network
