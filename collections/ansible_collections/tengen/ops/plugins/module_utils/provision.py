"""Checks shared by the provisioning roles: plan, region, credentials and the SSH public key.

Everything here runs before any provider API is called, so that bad input fails without a
change, with a message that names the variable to fix.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from typing import Any

# Key types a cloud provider accepts for login (OpenSSH public key format).
SSH_KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)


class ProvisionError(ValueError):
    """Bad input, with the message naming the variable."""


def parse_public_key(text: str) -> tuple[str, bytes]:
    """Return (key type, key blob) of one OpenSSH public key line, or raise ValueError.

    A private key, a PEM file or garbage is refused: the blob must decode and must start
    with its own key type, as every OpenSSH public key does.
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) != 1:
        raise ValueError(f"expected exactly one OpenSSH public key line, found {len(lines)} lines")
    if lines[0].startswith("-----BEGIN"):
        raise ValueError("this is a PEM block (a private key?), not an OpenSSH public key")
    fields = lines[0].split()
    if len(fields) < 2:
        raise ValueError("expected '<type> <base64> [comment]'")
    key_type, encoded = fields[0], fields[1]
    if key_type not in SSH_KEY_TYPES:
        raise ValueError(f"unknown key type {key_type!r}; expected one of {', '.join(SSH_KEY_TYPES)}")
    try:
        blob = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the key data is not valid base64") from None
    if len(blob) < 4:
        raise ValueError("the key data is too short")
    (length,) = struct.unpack(">I", blob[:4])
    if blob[4 : 4 + length] != key_type.encode():
        raise ValueError(f"the key data does not encode a {key_type} key")
    return key_type, blob


def md5_fingerprint(blob: bytes) -> str:
    """The MD5 fingerprint in colon-separated hex, as DigitalOcean names SSH keys."""
    digest = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def check_choice(var: str, value: str | None, allowed: list[str]) -> list[str]:
    if not value:
        return [f"{var} is required"]
    if value not in allowed:
        return [f"{var}: {value!r} is not a known value; choose one of {', '.join(allowed)}"]
    return []


def check_plan(var: str, plan: str | None, plans: dict[str, dict[str, Any]], min_ram_gb: float) -> list[str]:
    errors = check_choice(var, plan, sorted(plans))
    if errors:
        return errors
    ram = float(plans[plan]["ram_gb"])
    if ram < min_ram_gb:
        fitting = sorted((p for p, spec in plans.items() if float(spec["ram_gb"]) >= min_ram_gb), key=str)
        return [
            f"{var}: {plan!r} has {ram:g} GB of memory, below the {min_ram_gb:g} GB the service needs; "
            f"choose one of {', '.join(fitting)}"
        ]
    return []


def check_credentials(credentials: dict[str, Any]) -> list[str]:
    """Each named credential must be set: a non-empty string, or true where the caller passes
    only whether it is set (so that the secret itself never reaches the module)."""
    return [
        f"{var} is empty: set it (from the environment or an ansible-vault file)"
        for var, value in credentials.items()
        if value is None or value is False or not str(value).strip()
    ]


def check_public_key_file(
    var: str, path: str | None, key_types: list[str] | None = None
) -> tuple[list[str], dict[str, str]]:
    if not path:
        return [f"{var} is required"], {}
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read(16384)
    except (OSError, UnicodeDecodeError) as exc:
        return [f"{var}: cannot read {path}: {exc}"], {}
    try:
        key_type, blob = parse_public_key(text)
    except ValueError as exc:
        return [f"{var}: {path} is not an SSH public key: {exc}"], {}
    if key_types and key_type not in key_types:
        return [f"{var}: {path} is an {key_type} key; this provider takes only {', '.join(key_types)}"], {}
    public_key = " ".join(text.split()[:2])
    return [], {"public_key": public_key, "key_type": key_type, "fingerprint_md5": md5_fingerprint(blob)}
