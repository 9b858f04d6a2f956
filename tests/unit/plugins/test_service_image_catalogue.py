"""service_images: the one catalogue of our images, as game_stack and aws_images read it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ansible_collections.tengen.ops.plugins.lookup.service_images import service_images
from ansible_collections.tengen.ops.plugins.lookup.tree_digest import tree_digest

from tests.module_runner import template

REPO = Path(__file__).resolve().parents[3]
FILES = REPO / "files"


@pytest.mark.parametrize(
    ("variant", "engine_repository", "engine_dockerfile"),
    [
        ("katago", "tengen/engine", "Dockerfile"),
        ("gnugo", "tengen/engine-gnugo", "Dockerfile.gnugo"),
        ("katago-gpu", "tengen/engine-gpu", "Dockerfile.gpu"),
    ],
)
def test_every_image_is_named_after_its_context(variant, engine_repository, engine_dockerfile) -> None:
    images = service_images(str(FILES), variant)
    assert {n: (e["repository"], e["context"], e["dockerfile"]) for n, e in images.items()} == {
        "backend": ("tengen/backend", "app", "Dockerfile"),
        "engine": (engine_repository, "engine", engine_dockerfile),
        "web": ("tengen/web", "web", "Dockerfile"),
        "caddy": ("tengen/caddy", "caddy", "Dockerfile"),
    }
    for entry in images.values():
        assert (FILES / entry["context"] / entry["dockerfile"]).is_file()
        assert entry["tag"] == tree_digest(str(FILES / entry["context"]), dockerfile=entry["dockerfile"])
        assert entry["image"] == f"{entry['repository']}:{entry['tag']}"


def test_an_unknown_engine_variant_is_refused() -> None:
    with pytest.raises(ValueError, match="'leela'"):
        service_images(str(FILES), "leela")


@pytest.mark.parametrize("variant", ["katago", "gnugo"])
def test_game_stack_reads_the_catalogue_through_the_lookup(variant) -> None:
    """game_stack's __game_stack_builds, rendered by Ansible from the role's vars, is the catalogue."""
    builds = template(
        "{{ __game_stack_builds }}",
        "-e",
        f"@{REPO / 'roles' / 'game_stack' / 'vars' / 'main.yml'}",
        "-e",
        json.dumps({"game_stack_build_contexts_dir": str(FILES), "game_stack_engine_variant": variant}),
    )
    assert builds == service_images(str(FILES), variant)


def test_the_gpu_engine_is_tagged_by_what_its_own_build_reads() -> None:
    # Dockerfile.gpu reads its own KataGo configuration, so its tag differs from the CPU image's
    # and changes with that file alone.
    cpu, gpu = (
        service_images(str(FILES), "katago")["engine"],
        service_images(str(FILES), "katago-gpu")["engine"],
    )
    assert cpu["tag"] != gpu["tag"]
