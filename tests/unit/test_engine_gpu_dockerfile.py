"""files/engine/Dockerfile.gpu cannot be built here (NVIDIA's image, a GPU): what can be read of
it is checked here, the stages that need no NVIDIA download by tests/docker/test_engine_gpu_image.py."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GPU = (REPO / "files" / "engine" / "Dockerfile.gpu").read_text()
CPU = (REPO / "files" / "engine" / "Dockerfile").read_text()


def args(text: str) -> dict[str, str]:
    return dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.M))


def test_every_base_image_is_the_local_base_or_pinned_by_digest() -> None:
    defaults = args(GPU)
    sources = re.findall(r"^FROM (\S+)", GPU, re.M)
    stages = set(re.findall(r"^FROM \S+ AS (\w+)$", GPU, re.M))
    for source in sources:
        if source in stages:
            continue
        name = re.fullmatch(r"\$\{(\w+)\}", source)
        assert name, f"FROM {source} names neither a stage nor a build arg"
        if name.group(1) == "BASE_IMAGE":
            continue
        assert re.search(r"@sha256:[0-9a-f]{64}$", defaults[name.group(1)]), f"{name.group(1)} is not pinned"


def test_katago_downloads_are_pinned_as_in_the_cpu_image() -> None:
    gpu, cpu = args(GPU), args(CPU)
    for key in ("KATAGO_SOURCE_URL", "KATAGO_SOURCE_SHA256", "KATAGO_MODEL_URL", "KATAGO_MODEL_SHA256"):
        assert gpu[key] == cpu[key], key
    # Every fetch passes a sum; every sum is 64 hex digits.
    assert all(re.fullmatch(r"[0-9a-f]{64}", gpu[k]) for k in gpu if k.endswith("_SHA256"))
    fetches = re.findall(r"fetch \"\$(\w+)\" \"\$(\w+)\"", GPU)
    assert fetches and all(sha == url.replace("_URL", "_SHA256") for url, sha in fetches)


def test_the_stages_without_nvidia_come_first() -> None:
    # The classic builder's --target builds every stage before the target: tools and gateway
    # must not come after NVIDIA's build stage.
    order = re.findall(r"^FROM \S+(?: AS (\w+))?$", GPU, re.M)
    assert order[:2] == ["tools", "gateway"]
    assert order.index("build") > order.index("gateway")
    assert "USE_BACKEND=CUDA" in GPU
