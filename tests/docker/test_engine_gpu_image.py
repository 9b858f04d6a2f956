"""The GPU engine image's stages that need no NVIDIA download, built with --target.

files/engine/Dockerfile.gpu cannot be built whole here: its build stage starts from NVIDIA's
CUDA image and the image needs a GPU to play. Its first two stages need neither and are built
on the host engine from the local base image: `tools`, whose download helper refuses a file
whose sha256 differs from its pin, and `gateway`, the layer the GPU image runs on, here with a
stand-in KataGo (tests/engine/fake_katago.py) mounted where the image puts KataGo.
Containers start with `tengen-gpu-`, tags are `tengen/engine-gpu-*:svc-test`; all are removed.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
CONTEXT = REPO / "files" / "engine"
BASE_IMAGE = "tengen/debian:trixie-slim"
FAKE_KATAGO = REPO / "tests" / "engine" / "fake_katago.py"


def docker(*args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    run = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and run.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed:\n{run.stdout}\n{run.stderr}")
    return run


@pytest.fixture(scope="module")
def stages() -> Iterator[dict[str, str]]:
    if docker("image", "inspect", BASE_IMAGE, check=False).returncode != 0:
        pytest.fail(f"{BASE_IMAGE} is missing: run scripts/bootstrap")
    tags = {}
    for target in ("tools", "gateway"):
        tag = f"tengen/engine-gpu-{target}:svc-test"
        docker(
            "build",
            "-q",
            "--target",
            target,
            "--build-arg",
            f"BASE_IMAGE={BASE_IMAGE}",
            "-f",
            str(CONTEXT / "Dockerfile.gpu"),
            "-t",
            tag,
            str(CONTEXT),
        )
        tags[target] = tag
    yield tags
    docker("rmi", *tags.values(), check=False)


@pytest.fixture
def names() -> Iterator[list[str]]:
    started: list[str] = []
    yield started
    for name in started:
        docker("rm", "-f", "-v", name, check=False)


def test_the_download_helper_checks_every_pin(stages: dict[str, str]) -> None:
    # downloads/README.md is in the image's /downloads, as a pinned download placed there would be.
    readme = (CONTEXT / "downloads" / "README.md").read_bytes()
    good = hashlib.sha256(readme).hexdigest()
    bad = hashlib.sha256(readme + b"x").hexdigest()
    url = "https://mirror.invalid/README.md"

    def fetch(sha: str) -> subprocess.CompletedProcess[str]:
        return docker(
            "run", "--rm", "--network", "none", stages["tools"], "fetch", url, sha, "/tmp/out", check=False
        )

    ok = fetch(good)
    assert ok.returncode == 0 and "/tmp/out: OK" in ok.stdout, ok.stdout + ok.stderr
    wrong = fetch(bad)
    assert wrong.returncode != 0 and "FAILED" in wrong.stdout + wrong.stderr
    missing = fetch("")
    assert missing.returncode != 0 and f"missing sha256 for {url}" in missing.stderr


def test_the_gateway_stage_runs_katago_with_the_gpu_settings(
    stages: dict[str, str], names: list[str], tmp_path: Path
) -> None:
    model = tmp_path / "model.bin.gz"
    model.write_bytes(b"stand-in network")
    model.chmod(0o644)
    name = f"tengen-gpu-{uuid.uuid4().hex[:8]}"
    names.append(name)
    # As ECS runs it: read-only root, a writable /tmp, the image's unprivileged user.
    docker(
        "run",
        "-d",
        "--name",
        name,
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--user",
        "10001:10001",
        "-v",
        f"{FAKE_KATAGO}:/usr/local/bin/katago:ro",
        "-v",
        f"{model}:/usr/local/share/katago/model.bin.gz:ro",
        "-e",
        "FAKE_KATAGO_LOG=/tmp/katago.jsonl",
        stages["gateway"],
        "python3",
        "-m",
        "tengen_engine",
    )
    request = (
        "import json, sys, urllib.request; "
        "data = sys.argv[2].encode() if sys.argv[2] else None; "
        "req = urllib.request.Request(sys.argv[1], data=data); "
        "print(urllib.request.urlopen(req, timeout=30).read().decode())"
    )
    ready = None
    for _ in range(60):
        ready = docker(
            "exec", name, "python3", "-c", request, "http://127.0.0.1:8001/readyz", "", check=False
        )
        if ready.returncode == 0:
            break
        if docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip() != "true":
            break
        time.sleep(1)
    assert ready is not None and ready.returncode == 0, docker("logs", name, check=False).stderr
    body = json.dumps({"size": 9, "komi": 7.5, "rules": "chinese", "moves": [["B", "E5"]], "color": "W"})
    move = json.loads(
        docker("exec", name, "python3", "-c", request, "http://127.0.0.1:8001/move", body).stdout
    )
    assert move["engine"] == "KataGo" and move["move"]
    events = [
        json.loads(line) for line in docker("exec", name, "cat", "/tmp/katago.jsonl").stdout.splitlines()
    ]
    argv = next(e["argv"] for e in events if e["event"] == "start")
    assert argv[argv.index("-config") + 1] == "/usr/local/share/katago/gtp.cfg"
    assert argv[argv.index("-override-config") + 1] == "maxVisits=400,maxTime=5,numSearchThreads=8"
    config = docker("exec", name, "cat", "/usr/local/share/katago/gtp.cfg").stdout
    assert "cudaUseFP16 = auto" in config
    env = dict(
        line.split("=", 1)
        for line in json.loads(docker("inspect", "-f", "{{json .Config.Env}}", stages["gateway"]).stdout)
    )
    assert env["LD_LIBRARY_PATH"] == "/usr/local/lib/katago"
    assert env["NVIDIA_DRIVER_CAPABILITIES"] == "compute,utility"
