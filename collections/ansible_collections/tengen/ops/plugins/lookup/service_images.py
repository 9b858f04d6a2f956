"""Lookup: our service images, named after the digest of what their builds read."""

from __future__ import annotations

import os
from typing import Any

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase
from ansible_collections.tengen.ops.plugins.lookup.tree_digest import tree_digest
from ansible_collections.tengen.ops.plugins.module_utils.service_images import catalogue

DOCUMENTATION = r"""
name: service_images
short_description: The catalogue of our service images, each tagged with the digest of what its build reads
version_added: 0.1.0
description:
  - Returns one dictionary, by service (backend, engine, web, caddy), of C(repository),
    C(context) (a directory under I(contexts_dir)), C(dockerfile), C(tag) (the
    M(tengen.ops.tree_digest) digest of the context) and C(image) (C(repository:tag)).
  - The catalogue itself lives in the collection (module_utils/service_images.py); game_stack
    builds these images and aws_images pushes them, so both tracks name an image alike.
options:
  contexts_dir:
    description: The directory holding the build contexts (the repository's files/).
    type: path
    required: true
  engine_variant:
    description: Which engine image the engine entry names.
    type: str
    choices: [katago, gnugo, katago-gpu]
    default: katago
"""

EXAMPLES = r"""
- name: Show the backend image game_stack builds
  ansible.builtin.debug:
    msg: "{{ query('tengen.ops.service_images', contexts_dir=playbook_dir ~ '/files')[0].backend.image }}"
"""

RETURN = r"""
_raw:
  description: One dictionary of the services' images.
  type: list
  elements: dict
"""


def service_images(contexts_dir: str, engine_variant: str = "katago") -> dict[str, dict[str, str]]:
    images = catalogue(engine_variant)
    for entry in images.values():
        entry["tag"] = tree_digest(
            os.path.join(contexts_dir, entry["context"]), dockerfile=entry["dockerfile"]
        )
        entry["image"] = f"{entry['repository']}:{entry['tag']}"
    return images


class LookupModule(LookupBase):
    def run(self, terms: list[Any], variables: dict[str, Any] | None = None, **kwargs: Any) -> list[dict]:
        self.set_options(var_options=variables, direct=kwargs)
        try:
            return [service_images(self.get_option("contexts_dir"), self.get_option("engine_variant"))]
        except (OSError, ValueError) as exc:
            raise AnsibleLookupError(f"service_images: {exc}") from exc
