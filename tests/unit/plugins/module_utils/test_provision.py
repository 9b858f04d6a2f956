"""The provisioning input checks: plan, region, credentials, SSH public key."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from ansible_collections.tengen.ops.plugins.module_utils.provision import (
    check_choice,
    check_credentials,
    check_plan,
    check_public_key_file,
    md5_fingerprint,
    parse_public_key,
)

PLANS = {
    "tiny": {"vcpu": 1, "ram_gb": 0.5},
    "small": {"vcpu": 2, "ram_gb": 2},
    "medium": {"vcpu": 2, "ram_gb": 4},
}


@pytest.fixture(scope="module")
def keypair(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real ed25519 key pair made by ssh-keygen; returns the private key path."""
    key = tmp_path_factory.mktemp("ssh") / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "op@example", "-f", str(key)], check=True
    )
    return key


def test_public_key_is_accepted_and_fingerprint_matches_ssh_keygen(keypair: Path) -> None:
    pub = keypair.with_suffix(".pub")
    errors, info = check_public_key_file("x_key", str(pub))
    assert errors == []
    assert info["key_type"] == "ssh-ed25519"
    assert info["public_key"] == " ".join(pub.read_text().split()[:2])
    listed = subprocess.run(
        ["ssh-keygen", "-l", "-E", "md5", "-f", str(pub)], check=True, capture_output=True, text=True
    ).stdout
    assert listed.split()[1] == "MD5:" + info["fingerprint_md5"]


def test_private_key_is_refused_naming_the_variable(keypair: Path) -> None:
    errors, info = check_public_key_file("provision_droplet_public_key_file", str(keypair))
    assert info == {}
    assert len(errors) == 1
    assert errors[0].startswith("provision_droplet_public_key_file: ")
    assert "not an SSH public key" in errors[0]


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "found 0 lines"),
        ("hello world\n", "unknown key type"),
        ("ssh-ed25519 !!!notbase64\n", "not valid base64"),
        ("ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIG9vb29vb29vb29vb29vb29vb29vb29vb29vb29vb29v\n", "does not encode"),
        ("ssh-ed25519 AAAA\nssh-ed25519 AAAA\n", "found 2 lines"),
    ],
)
def test_malformed_public_keys_are_refused(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_public_key(text)


def test_key_type_can_be_restricted(keypair: Path) -> None:
    pub = str(keypair.with_suffix(".pub"))
    [msg] = check_public_key_file("k_var", pub, ["ssh-rsa"])[0]
    assert msg == f"k_var: {pub} is an ssh-ed25519 key; this provider takes only ssh-rsa"
    assert check_public_key_file("k_var", pub, ["ssh-rsa", "ssh-ed25519"])[0] == []


def test_missing_key_file_names_the_variable(tmp_path: Path) -> None:
    errors, _ = check_public_key_file("k_var", str(tmp_path / "absent.pub"))
    assert errors and errors[0].startswith("k_var: cannot read")
    assert check_public_key_file("k_var", None)[0] == ["k_var is required"]


def test_fingerprint_format() -> None:
    assert md5_fingerprint(b"") == "d4:1d:8c:d9:8f:00:b2:04:e9:80:09:98:ec:f8:42:7e"


def test_region_must_be_in_the_catalogue() -> None:
    assert check_choice("r_var", "fra1", ["fra1", "ams3"]) == []
    [msg] = check_choice("r_var", "mars1", ["fra1", "ams3"])
    assert msg.startswith("r_var: 'mars1' is not a known value") and "fra1" in msg
    assert check_choice("r_var", "", ["fra1"]) == ["r_var is required"]


def test_plan_must_be_known_and_large_enough() -> None:
    assert check_plan("p_var", "medium", PLANS, 2) == []
    assert check_plan("p_var", "small", PLANS, 2) == []
    [unknown] = check_plan("p_var", "huge", PLANS, 2)
    assert unknown.startswith("p_var: 'huge' is not a known value")
    [small] = check_plan("p_var", "tiny", PLANS, 2)
    assert small.startswith("p_var: 'tiny' has 0.5 GB of memory, below the 2 GB")
    assert "medium" in small and "small" in small and "tiny, " not in small


def test_empty_credentials_are_named_without_their_values() -> None:
    errors = check_credentials(
        {
            "tok_var": "",
            "id_var": None,
            "ok_var": "s3cr3t",
            "blank_var": "  ",
            "set_var": True,
            "unset_var": False,
        }
    )
    assert errors == [
        "tok_var is empty: set it (from the environment or an ansible-vault file)",
        "id_var is empty: set it (from the environment or an ansible-vault file)",
        "blank_var is empty: set it (from the environment or an ansible-vault file)",
        "unset_var is empty: set it (from the environment or an ansible-vault file)",
    ]
    assert not any("s3cr3t" in e for e in errors)
