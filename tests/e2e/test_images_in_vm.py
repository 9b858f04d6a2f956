"""The service images build inside the sandbox VM from the local base image, and pass their HEALTHCHECK there.

The base image is moved in with `docker save | docker load` (no registry is needed) and each
build context with tar; the VM's own Docker engine builds from Debian's archive. Everything
made inside the VM is named `tengen-svc-e2e-*` or tagged `:svc-e2e` and removed afterwards.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.conftest import REPO
from tests.e2e.sandbox import Sandbox

BASE_IMAGE = "tengen/debian:trixie-slim"
PREFIX = "tengen-svc-e2e-"
IMAGES = {
    "backend": ("files/app", "Dockerfile", "tengen/backend:svc-e2e"),
    "engine-gnugo": ("files/engine", "Dockerfile.gnugo", "tengen/engine-gnugo:svc-e2e"),
    "web": ("files/web", "Dockerfile", "tengen/web:svc-e2e"),
}


def in_vm(sandbox: Sandbox, *cmd: str, input: bytes | None = None) -> str:
    run = sandbox.exec(*cmd, input=input, check=False)
    assert run.returncode == 0, (
        f"{' '.join(cmd)} failed in the VM:\n{run.stdout.decode()}\n{run.stderr.decode()}"
    )
    return run.stdout.decode().strip()


@pytest.fixture(scope="module")
def vm_images(sandbox: Sandbox) -> Iterator[dict[str, str]]:
    had_base = sandbox.exec("docker", "image", "inspect", BASE_IMAGE, check=False).returncode == 0
    if not had_base:
        save = subprocess.Popen(["docker", "save", BASE_IMAGE], stdout=subprocess.PIPE)
        load = subprocess.run(
            ["docker", "exec", "-i", sandbox.container, "docker", "load"],
            stdin=save.stdout,
            capture_output=True,
        )
        save.stdout.close()
        assert save.wait() == 0 and load.returncode == 0, load.stderr.decode()
    try:
        for name, (context, dockerfile, tag) in IMAGES.items():
            dest = f"/tmp/{PREFIX}{name}"
            archive = subprocess.run(
                ["tar", "-C", str(REPO / context), "--exclude=__pycache__", "-c", "."],
                capture_output=True,
                check=True,
            ).stdout
            in_vm(sandbox, "sh", "-c", f"rm -rf {dest} && mkdir -p {dest} && tar -C {dest} -x", input=archive)
            in_vm(sandbox, "docker", "build", "-q", "--build-arg", f"BASE_IMAGE={BASE_IMAGE}",
                  "-f", f"{dest}/{dockerfile}", "-t", tag, dest)  # fmt: skip
        yield {name: tag for name, (_, _, tag) in IMAGES.items()}
    finally:
        sandbox.exec("docker", "rmi", *(tag for _, _, tag in IMAGES.values()), check=False)
        sandbox.exec("sh", "-c", f"rm -rf /tmp/{PREFIX}*", check=False)
        if not had_base:
            sandbox.exec("docker", "rmi", BASE_IMAGE, check=False)


@pytest.mark.parametrize("name", list(IMAGES))
def test_a_container_of_each_image_passes_its_healthcheck_in_the_vm(
    sandbox: Sandbox, vm_images: dict[str, str], name: str
) -> None:
    container = f"{PREFIX}{name}"
    sandbox.exec("docker", "rm", "-f", container, check=False)
    in_vm(sandbox, "docker", "run", "-d", "--name", container, vm_images[name])
    try:
        deadline = time.monotonic() + 120
        while True:
            state = json.loads(in_vm(sandbox, "docker", "inspect", "-f", "{{json .State}}", container))
            health = state.get("Health", {}).get("Status")
            if health == "healthy":
                break
            logs = sandbox.exec("docker", "logs", container, check=False)
            assert state["Running"] and time.monotonic() < deadline, (
                f"{container} is {health} in the VM:\n{logs.stdout.decode()}{logs.stderr.decode()}"
            )
            time.sleep(2)
        assert in_vm(sandbox, "docker", "exec", container, "id", "-u") == "10001"
    finally:
        sandbox.exec("docker", "rm", "-f", container, check=False)
