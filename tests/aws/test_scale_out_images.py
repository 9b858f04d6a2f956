"""The image push path against a real registry standing in for ECR's endpoint.

Debian's docker-registry (the CNCF distribution registry) serves on a free loopback port;
aws_images builds the catalogue's images from small build contexts (the real ones need the
network: KataGo), pushes them there under their digest tags or one immutable tag, and the test
pulls them back.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.conftest import REPO
from tests.scale_out_run import run_playbook

sys.path.insert(0, str(REPO / "collections"))
from ansible_collections.tengen.ops.plugins.lookup.service_images import service_images  # noqa: E402

pytestmark = pytest.mark.docker

STACK = "tengen-staging"
TAG = "0.1.0-push-test"
SERVICES = ("backend", "engine", "web")


@pytest.fixture(scope="module")
def contexts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Build contexts laid out as files/ is, each a one-file image FROM scratch (nothing to pull).

    Their digests differ from the real contexts', so the tags they get never name a real image.
    """
    root = tmp_path_factory.mktemp("contexts")
    for name, entry in service_images(str(REPO / "files")).items():
        context = root / entry["context"]
        context.mkdir(exist_ok=True)
        (context / entry["dockerfile"]).write_text("FROM scratch\nCOPY hello.txt /hello.txt\n")
        (context / "hello.txt").write_text(f"tengen push test: {name} {root.name}\n")
    yield root
    client = docker.from_env()
    for entry in service_images(str(root)).values():
        for image in client.images.list(name=entry["repository"]):
            if entry["image"] in image.tags:
                client.images.remove(image.id, force=True)


def push(registry: str, contexts: Path, tag: str) -> object:
    return run_playbook(
        "images.yml",
        "http://127.0.0.1:1",
        {
            "aws_images_registry": registry,
            "aws_images_build_contexts_dir": str(contexts),
            "scale_out_image_tag": tag,
        },
        moto=False,
    )


def test_the_catalogue_images_are_built_and_pushed_under_their_digest_tags(
    registry: str, contexts: Path
) -> None:
    run = push(registry, contexts, "")
    assert run.rc == 0, run.output[-3000:]
    assert "aws_images : build | Build each missing image from its build context" in run.changed_tasks
    assert "aws_images : push | Tag and push each image under its immutable tag" in run.changed_tasks
    client = docker.from_env()
    images = service_images(str(contexts))
    assert set(SERVICES) < set(images)
    for service in SERVICES:
        local = client.images.get(images[service]["image"])  # the name game_stack gives it
        pushed = f"{registry}/{STACK}/{service}"
        # Forget the pushed name, then fetch it back from the registry by its digest tag.
        client.images.remove(f"{pushed}:{images[service]['tag']}")
        assert client.images.pull(pushed, tag=images[service]["tag"]).id == local.id
    # caddy stays on the VM: nothing pushed it.
    assert f"{registry}/{STACK}/caddy" not in str([i.tags for i in client.images.list()])
    # A second run builds nothing: the images are there.
    again = push(registry, contexts, "")
    assert again.rc == 0, again.output[-3000:]
    assert "aws_images : build | Build each missing image from its build context" not in again.changed_tasks


def test_an_explicit_immutable_tag_pushes_the_same_images(registry: str, contexts: Path) -> None:
    run = push(registry, contexts, TAG)
    assert run.rc == 0, run.output[-3000:]
    client = docker.from_env()
    images = service_images(str(contexts))
    pushed = f"{registry}/{STACK}/backend"
    client.images.remove(f"{pushed}:{TAG}")
    by_tag = client.images.pull(pushed, tag=TAG)
    assert by_tag.id == client.images.get(images["backend"]["image"]).id
    digest = [d for d in by_tag.attrs["RepoDigests"] if d.startswith(pushed + "@")][0]
    assert client.images.pull(digest).id == by_tag.id


def test_a_moving_tag_is_refused_before_any_push(registry: str, contexts: Path) -> None:
    run = push(registry, contexts, "latest")
    assert run.rc != 0
    assert run.failed_tasks == ["aws_images : Refuse a moving tag"]
    assert "aws_images_tag" in run.output
    assert "push |" not in run.output and "build |" not in run.output
