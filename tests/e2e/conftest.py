"""The end-to-end tier: one sandbox VM for the whole session, built as `make demo` builds one.

The fixture `sandbox` starts a dedicated systemd container (`tengen-e2e-sandbox`, free ports, its
key and known_hosts under `.sandbox/e2e/`) through `playbooks/sandbox.yml`, runs `site.yml` on it
through a generated inventory, and removes it at the end of the session unless
`TENGEN_KEEP_SANDBOX=1` (then a later session reuses it and its ports). `TENGEN_E2E_SANDBOX`
names the container instead; a container of the default name that another checkout owns is
never taken over (this session then uses the default name with a suffix of its own).
Every test under tests/e2e is marked `e2e`.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, free_port
from tests.e2e.sandbox import Sandbox, run_playbook

# Overridable so that two checkouts on one machine do not share (and remove) one sandbox.
CONTAINER = os.environ.get("TENGEN_E2E_SANDBOX", "tengen-e2e-sandbox")
STATE_DIR = REPO / ".sandbox" / "e2e"
# Another checkout on the same Docker engine may run its own session: TENGEN_E2E_SANDBOX names
# the container, and without it a name already owned by another checkout is not taken over.
NAME_VARIABLE = "TENGEN_E2E_SANDBOX"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.e2e)


def inspect(container: str) -> dict | None:
    probe = subprocess.run(["docker", "inspect", container], capture_output=True, text=True, check=False)
    return json.loads(probe.stdout)[0] if probe.returncode == 0 else None


def owned_by_us(details: dict) -> bool:
    return (details["Config"].get("Labels") or {}).get("tengen.sandbox_dir") == str(STATE_DIR)


def container_name() -> str:
    """The default name, unless the environment names one, or another checkout owns it."""
    chosen = os.environ.get(NAME_VARIABLE)
    if chosen:
        details = inspect(chosen)
        if details is not None and not owned_by_us(details):
            pytest.fail(f"{chosen} belongs to another checkout; set {NAME_VARIABLE} to another name")
        return chosen
    details = inspect(CONTAINER)
    if details is None or owned_by_us(details):
        return CONTAINER
    return f"{CONTAINER}-{hashlib.sha256(str(STATE_DIR).encode()).hexdigest()[:8]}"


def kept_ports(container: str) -> dict[str, int] | None:
    """The ports of a sandbox kept by an earlier session (TENGEN_KEEP_SANDBOX=1), if it exists."""
    details = inspect(container)
    if details is None:
        return None
    bindings = details["HostConfig"].get("PortBindings") or {}
    try:
        return {
            f"{name}_port": int(bindings[f"{port}/tcp"][0]["HostPort"])
            for name, port in (("ssh", 22), ("http", 80), ("https", 443))
        }
    except (KeyError, IndexError, TypeError):
        return None


def write_inventory(ssh_port: int) -> Path:
    """An inventory directory for this VM: its own hosts.yml, the sandbox's group_vars."""
    inventory = STATE_DIR / "inventory"
    inventory.mkdir(parents=True, exist_ok=True)
    hosts = {
        "vm": {
            "hosts": {"sandbox": {"ansible_host": "127.0.0.1", "ansible_port": ssh_port}},
            "vars": {"sandbox_dir": str(STATE_DIR)},
        }
    }
    (inventory / "hosts.yml").write_text(json.dumps(hosts, indent=2) + "\n")  # JSON is YAML
    group_vars = inventory / "group_vars"
    if not group_vars.is_symlink():
        group_vars.symlink_to(REPO / "inventories" / "sandbox" / "group_vars")
    return inventory


def tail(proc: subprocess.CompletedProcess, lines: int = 60) -> str:
    return "\n".join((proc.stdout + proc.stderr).splitlines()[-lines:])


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    keep = os.environ.get("TENGEN_KEEP_SANDBOX") == "1"
    container = container_name()
    ports = kept_ports(container) or {
        "ssh_port": free_port(),
        "http_port": free_port(),
        "https_port": free_port(),
    }
    sandbox_vars = {"sandbox_name": container, "sandbox_dir": str(STATE_DIR)}
    sandbox_vars.update({f"sandbox_{name}": port for name, port in ports.items()})
    sandbox_args = ("-e", json.dumps(sandbox_vars))
    created = run_playbook(None, "playbooks/sandbox.yml", *sandbox_args)
    try:
        assert created.returncode == 0, f"playbooks/sandbox.yml failed:\n{tail(created)}"
        inventory = write_inventory(ports["ssh_port"])
        site = run_playbook(inventory, "site.yml")
        assert site.returncode == 0, f"site.yml failed on the e2e sandbox:\n{tail(site)}"
        ip = subprocess.run(
            ["docker", "inspect", "--format", "{{.NetworkSettings.IPAddress}}", container],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        yield Sandbox(
            container=container,
            inventory=inventory,
            ip=ip,
            key=STATE_DIR / "id_ed25519",
            known_hosts=STATE_DIR / "known_hosts",
            **ports,
        )
    finally:
        if not keep:
            run_playbook(None, "playbooks/sandbox.yml", *sandbox_args, "-e", "state=absent")
