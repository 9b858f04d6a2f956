"""Fixtures of the provisioning tests: the local recording endpoint and an SSH key pair."""

from __future__ import annotations

from provision_harness import fake_api, public_key, rsa_public_key

__all__ = ["fake_api", "public_key", "rsa_public_key"]
