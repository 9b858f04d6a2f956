"""The service images, built on the host engine from the local base image and run as containers.

Every container and network made here starts with the `tengen-svc-` prefix, every tag is
`tengen/*:svc-test`; all are removed afterwards (the layers stay in the build cache).
Image sizes are printed (run with -s) and written to artifacts/image-sizes.txt, not asserted.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
BASE_IMAGE = "tengen/debian:trixie-slim"
IMAGES = {
    "backend": ("files/app", "Dockerfile", "tengen/backend:svc-test"),
    "engine-gnugo": ("files/engine", "Dockerfile.gnugo", "tengen/engine-gnugo:svc-test"),
    "web": ("files/web", "Dockerfile", "tengen/web:svc-test"),
}


def docker(*args: str, check: bool = True, timeout: float = 900) -> str:
    run = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and run.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed:\n{run.stdout}\n{run.stderr}")
    return run.stdout.strip()


@pytest.fixture(scope="module")
def images() -> Iterator[dict[str, str]]:
    if subprocess.run(["docker", "image", "inspect", BASE_IMAGE], capture_output=True).returncode != 0:
        pytest.fail(f"{BASE_IMAGE} is missing: run scripts/bootstrap")
    for context, dockerfile, tag in IMAGES.values():
        dockerfile_path = str(REPO / context / dockerfile)
        docker(
            "build",
            "-q",
            "--build-arg",
            f"BASE_IMAGE={BASE_IMAGE}",
            "-f",
            dockerfile_path,
            "-t",
            tag,
            str(REPO / context),
        )
    sizes = {tag: int(docker("image", "inspect", "-f", "{{.Size}}", tag)) for _, _, tag in IMAGES.values()}
    report = ", ".join(f"{tag} {size / 1e6:.0f} MB" for tag, size in sizes.items())
    print(f"\nimage sizes: {report}")
    (REPO / "artifacts").mkdir(exist_ok=True)
    (REPO / "artifacts" / "image-sizes.txt").write_text(report + "\n")
    yield {name: tag for name, (_, _, tag) in IMAGES.items()}
    docker("rmi", *sizes, check=False)


@pytest.fixture
def run() -> Iterator:
    """Start containers with the prefix; remove them (and the test network) afterwards."""
    names: list[str] = []
    networks: list[str] = []

    def start(image: str, *args: str, network: str | None = None, name: str | None = None) -> str:
        name = name or f"tengen-svc-{uuid.uuid4().hex[:8]}"
        if network and network not in networks:
            docker("network", "create", network)
            networks.append(network)
        extra = ["--network", network] if network else []
        docker("run", "-d", "--name", name, *extra, *args, image)
        names.append(name)
        return name

    yield start
    for name in names:
        docker("rm", "-f", "-v", name, check=False)
    for network in networks:
        docker("network", "rm", network, check=False)


def wait_healthy(name: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        state = json.loads(docker("inspect", "-f", "{{json .State}}", name))
        health = state.get("Health", {}).get("Status")
        if health == "healthy":
            return
        if not state["Running"] or time.monotonic() > deadline:
            raise AssertionError(f"{name} is {health}, running={state['Running']}:\n{docker('logs', name)}")
        time.sleep(1)


def http(container: str, url: str, body: dict | None = None) -> dict:
    """A request from inside a container's network namespace (no host port is published)."""
    code = (
        "import json, sys, urllib.request; "
        "data = sys.argv[2].encode() if sys.argv[2] else None; "
        "req = urllib.request.Request(sys.argv[1], data=data); "
        "print(urllib.request.urlopen(req, timeout=30).read().decode())"
    )
    out = docker("exec", container, "python3", "-c", code, url, json.dumps(body) if body is not None else "")
    return json.loads(out)


@pytest.mark.parametrize("name", list(IMAGES))
def test_each_image_passes_its_healthcheck_as_uid_10001(images: dict[str, str], run, name: str) -> None:
    container = run(images[name])
    wait_healthy(container)
    assert docker("exec", container, "id", "-u") == "10001"
    assert docker("inspect", "-f", "{{.Config.User}}", container).startswith("10001")


@pytest.mark.parametrize("name", list(IMAGES))
def test_each_image_runs_on_a_read_only_root_with_task_storage_on_tmp(
    images: dict[str, str], run, name: str
) -> None:
    """As ECS runs them (aws_services): a read-only root and a fresh volume on /tmp.

    Fargate mounts task storage as root 0755 unless the image declares the path a VOLUME, so
    the image must declare it; Docker, like Fargate then, gives the new volume the image's
    /tmp permissions. (The backend's SQLite directory is its own VOLUME; on ECS it uses PostgreSQL.)
    """
    volumes = json.loads(docker("image", "inspect", "-f", "{{json .Config.Volumes}}", images[name]))
    assert "/tmp" in volumes
    container = run(images[name], "--read-only", "--mount", "type=volume,target=/tmp")
    wait_healthy(container)
    docker("exec", container, "sh", "-c", "echo probe > /tmp/probe && ! touch /probe 2>/dev/null")


def test_backend_and_gnugo_engine_play_a_game_together(images: dict[str, str], run) -> None:
    network = f"tengen-svc-net-{uuid.uuid4().hex[:6]}"
    engine = run(
        images["engine-gnugo"], "-e", "TENGEN_GNUGO_LEVEL=1", network=network, name=f"{network}-engine"
    )
    backend = run(images["backend"], "-e", f"TENGEN_ENGINE_URL=http://{engine}:8001", network=network)
    wait_healthy(engine)
    wait_healthy(backend)
    assert http(backend, "http://127.0.0.1:8000/readyz")["status"] == "ready"
    created = http(backend, "http://127.0.0.1:8000/api/games", {"size": 9})
    gid, token = created["game"]["id"], created["tokens"]["B"]
    http(backend, f"http://127.0.0.1:8000/api/games/{gid}/moves", {"token": token, "move": "E5"})
    deadline = time.monotonic() + 30
    while len((game := http(backend, f"http://127.0.0.1:8000/api/games/{gid}"))["moves"]) < 2:
        assert time.monotonic() < deadline, game
        time.sleep(0.5)
    assert game["moves"][1][0] == "W"
    # The database is on the image's volume, owned by the non-root user.
    assert docker("exec", backend, "stat", "-c", "%u", "/var/lib/tengen/tengen.db") == "10001"
    # SIGTERM: a clean exit, code 0.
    docker("stop", "-t", "20", backend)
    assert docker("inspect", "-f", "{{.State.ExitCode}}", backend) == "0"


def test_the_backend_image_broadcasts_eagerly_on_uvloop(images: dict[str, str]) -> None:
    scenario = REPO / "tests" / "app" / "broadcast_scenario.py"
    out = docker(
        "run", "--rm", "-v", f"{scenario}:/tmp/broadcast_scenario.py:ro", "--entrypoint", "python3",
        images["backend"], "-c",
        "import asyncio, runpy, sys; from tengen_app.__main__ import new_event_loop;"
        " print(type(new_event_loop()).__module__, sys.version_info >= (3, 12));"
        " runpy.run_path('/tmp/broadcast_scenario.py', run_name='__main__')",
    )  # fmt: skip
    loop_module, eager = out.splitlines()[0].split()
    # The server's loop is uvloop's, and the image's Python starts sends eagerly (3.12+).
    assert loop_module.startswith("uvloop") and eager == "True", out
    assert "broadcast scenario held" in out


def test_web_serves_the_client(images: dict[str, str], run) -> None:
    web = run(images["web"])
    wait_healthy(web)
    fetch = "exec 3<>/dev/tcp/127.0.0.1/8080; printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3"
    page = docker("exec", web, "bash", "-c", fetch)
    assert "200 OK" in page and '<svg id="board"' in page
    log = docker("logs", web)
    entries = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert any(e["path"] in ("/", "/index.html") and e["status"] == 200 for e in entries)
