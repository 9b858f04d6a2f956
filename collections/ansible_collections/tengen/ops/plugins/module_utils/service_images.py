"""The catalogue of our service images: one place for their names and how each is built.

game_stack builds and runs them on the VM; aws_images pushes the same images to ECR and
aws_services runs them on ECS. Both read this catalogue through the tengen.ops.service_images
lookup, so an image is named and tagged the same way on both tracks.
"""

from __future__ import annotations

# Per service: the local repository, the build context (a directory of the repository's files/)
# and the Dockerfile in it. Two engines share one gateway and one context.
CATALOGUE: dict[str, dict[str, str]] = {
    "backend": {"repository": "tengen/backend", "context": "app", "dockerfile": "Dockerfile"},
    "engine": {"repository": "tengen/engine", "context": "engine", "dockerfile": "Dockerfile"},
    "web": {"repository": "tengen/web", "context": "web", "dockerfile": "Dockerfile"},
    "caddy": {"repository": "tengen/caddy", "context": "caddy", "dockerfile": "Dockerfile"},
}

# The engine variants: KataGo in production, GNU Go where KataGo cannot be had (the sandbox),
# KataGo on an NVIDIA GPU for the ECS track's GPU hosts (it builds only with NVIDIA's image).
ENGINE_VARIANTS: dict[str, dict[str, str]] = {
    "katago": {"repository": "tengen/engine", "dockerfile": "Dockerfile"},
    "gnugo": {"repository": "tengen/engine-gnugo", "dockerfile": "Dockerfile.gnugo"},
    "katago-gpu": {"repository": "tengen/engine-gpu", "dockerfile": "Dockerfile.gpu"},
}


def catalogue(engine_variant: str = "katago") -> dict[str, dict[str, str]]:
    """The catalogue with the engine entry of the given variant (a fresh copy)."""
    if engine_variant not in ENGINE_VARIANTS:
        raise ValueError(f"engine variant {engine_variant!r} is not one of {sorted(ENGINE_VARIANTS)}")
    out = {name: dict(entry) for name, entry in CATALOGUE.items()}
    out["engine"].update(ENGINE_VARIANTS[engine_variant])
    return out
