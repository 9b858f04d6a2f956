"""The image push path against a real registry standing in for ECR's endpoint.

Debian's docker-registry (the CNCF distribution registry) serves on a free loopback port;
aws_images pushes a small image there under an immutable tag, and the test pulls it back.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator

import docker
import pytest

from tests.scale_out_run import run_playbook

pytestmark = pytest.mark.docker

STACK = "tengen-staging"
TAG = "0.1.0-push-test"
SOURCE = "tengen-aws-tiny:source"


@pytest.fixture(scope="module")
def tiny_image() -> Iterator[str]:
    """A one-file image, imported rather than pulled (no registry is reachable)."""
    client = docker.from_env()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"tengen push test\n"
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    client.api.import_image_from_data(buf.getvalue(), repository="tengen-aws-tiny", tag="source")
    image = client.images.get(SOURCE)
    yield image.id
    for tag in client.images.get(image.id).tags:
        client.images.remove(tag, force=True)


def test_images_are_pushed_under_the_immutable_tag_and_pull_back(registry: str, tiny_image: str) -> None:
    run = run_playbook(
        "images.yml",
        "http://127.0.0.1:1",
        {
            "aws_images_registry": registry,
            "aws_images_sources": {"backend": SOURCE},
            "scale_out_image_tag": TAG,
        },
        moto=False,
    )
    assert run.rc == 0, run.output[-3000:]
    assert "aws_images : push | Tag and push each image under the immutable tag" in run.changed_tasks
    client = docker.from_env()
    pushed = f"{registry}/{STACK}/backend"
    # Forget the local copy, then fetch it from the registry by tag and by digest.
    client.images.remove(f"{pushed}:{TAG}")
    by_tag = client.images.pull(pushed, tag=TAG)
    assert by_tag.id == tiny_image
    digest = [d for d in by_tag.attrs["RepoDigests"] if d.startswith(pushed + "@")][0]
    by_digest = client.images.pull(digest)
    assert by_digest.id == tiny_image


def test_a_moving_tag_is_refused_before_any_push(registry: str, tiny_image: str) -> None:
    run = run_playbook(
        "images.yml",
        "http://127.0.0.1:1",
        {
            "aws_images_registry": registry,
            "aws_images_sources": {"web": SOURCE},
            "scale_out_image_tag": "latest",
        },
        moto=False,
    )
    assert run.rc != 0
    assert run.failed_tasks == ["aws_images : Refuse a moving tag"]
    assert "aws_images_tag" in run.output
    assert "push |" not in run.output
