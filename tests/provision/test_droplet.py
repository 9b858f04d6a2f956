"""playbooks/provision/droplet.yml against the local recording endpoint (not DigitalOcean itself).

What is exercised: argument validation, the DigitalOcean API v2 calls that change something (in order only
where one needs another), the bodies we send, idempotence, check mode, release, and the rendered
inventory. What is not:
DigitalOcean's own behaviour (a real Droplet booting, the debian-13-x64 image, backups being
taken, the firewall filtering traffic, the asynchronous reserved IP actions taking time).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from provision_harness import DO_TOKEN, FakeApi, assert_changes, run_playbook

PLAYBOOK = "playbooks/provision/droplet.yml"
NAME = "go-test"
MUTATING = {"POST", "PUT", "DELETE"}


def env(token: str = DO_TOKEN) -> dict[str, str]:
    return {"DO_API_TOKEN": token}


def extra(api: FakeApi, key: Path, inv: Path, **more: object) -> dict:
    return {
        "provision_droplet_name": NAME,
        "provision_droplet_region": "ams3",
        "provision_droplet_public_key_file": str(key),
        "provision_droplet_api_url": f"{api.url}/v2",
        "provision_droplet_inventory_dir": str(inv),
        "provision_droplet_wait_for_ssh": False,
        **more,
    }


def calls_of(api: FakeApi) -> list[tuple[str, str]]:
    calls = api.calls()
    assert all(c["api"] == "digitalocean" and c["authorized"] for c in calls)
    return [(c["method"], c["path"]) for c in calls]


def mutating(calls: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [c for c in calls if c[0] in MUTATING]


def test_create_rerun_check_and_release(fake_api: FakeApi, public_key: Path, tmp_path: Path) -> None:
    inv = tmp_path / "inv"
    vars_ = extra(fake_api, public_key, inv)
    listed = subprocess.run(
        ["ssh-keygen", "-l", "-E", "md5", "-f", str(public_key)], check=True, capture_output=True, text=True
    )
    fingerprint = listed.stdout.split()[1].removeprefix("MD5:")

    # check mode on nothing: would change, mutates nothing, writes no inventory
    dry = run_playbook(PLAYBOOK, vars_, env(), check=True)
    assert dry.rc == 0, dry.out
    assert dry.changed > 0
    assert mutating(calls_of(fake_api)) == []
    assert not (inv / "hosts.yml").exists()
    fake_api.reset_calls()

    # create: key, firewall, Droplet (the module powers it on after creating it), reserved IP
    first = run_playbook(PLAYBOOK, vars_, env())
    assert first.rc == 0, first.out
    raw = fake_api.calls()
    calls = calls_of(fake_api)
    state = fake_api.state()["digitalocean"]
    [made] = state["droplets"].values()
    power_on = ("POST", f"droplets/{made['id']}/actions")
    assert_changes(
        mutating(calls),
        [("POST", "account/keys"), ("POST", "tags"), ("POST", "firewalls"), ("POST", "droplets"), power_on]
        + [("POST", "reserved_ips")],
        before=(
            (("POST", "account/keys"), ("POST", "droplets")),  # the Droplet is made with the key
            (("POST", "tags"), ("POST", "firewalls")),  # the firewall applies to the tag
            (("POST", "droplets"), power_on),
            (("POST", "droplets"), ("POST", "reserved_ips")),  # the IP is made on the Droplet
        ),
    )
    assert raw[calls.index(("POST", f"droplets/{made['id']}/actions"))]["body"] == {"type": "power_on"}
    assert calls[0] == ("GET", f"account/keys/{fingerprint}")
    bodies = {(c["method"], c["path"]): c["body"] for c in raw}
    assert bodies[("POST", "tags")] == {"name": f"tengen-{NAME}"}
    assert bodies[("POST", "account/keys")] == {
        "name": NAME,
        "public_key": " ".join(public_key.read_text().split()[:2]),
    }
    firewall = bodies[("POST", "firewalls")]
    assert firewall["name"] == NAME
    assert firewall["tags"] == [f"tengen-{NAME}"]
    assert sorted((r["protocol"], r["ports"]) for r in firewall["inbound_rules"]) == [
        ("tcp", "22"),
        ("tcp", "443"),
        ("tcp", "80"),
    ]
    assert all(r["sources"]["addresses"] == ["0.0.0.0/0", "::/0"] for r in firewall["inbound_rules"])
    droplet = bodies[("POST", "droplets")]
    assert {
        k: droplet[k]
        for k in ("name", "region", "size", "image", "backups", "monitoring", "tags", "ssh_keys")
    } == {
        "name": NAME,
        "region": "ams3",
        "size": "s-2vcpu-4gb",
        "image": "debian-13-x64",
        "backups": True,
        "monitoring": True,
        "tags": ["tengen", f"tengen-{NAME}"],
        "ssh_keys": [fingerprint],
    }
    recording = json.dumps(raw)
    assert DO_TOKEN not in recording  # the token travels only in the Authorization header
    assert DO_TOKEN not in first.out

    # the inventory points at the reserved IP and holds no secret
    [reserved] = state["reserved_ips"].values()
    assert reserved["droplet"]["id"] == made["id"]
    hosts_text = (inv / "hosts.yml").read_text()
    provider_text = (inv / "group_vars" / "all" / "provider.yml").read_text()
    # with the Droplet's VPC address, where engine VMs and the game VM talk
    assert yaml.safe_load(hosts_text) == {
        "vm": {"hosts": {NAME: {"ansible_host": reserved["ip"], "tengen_private_address": "10.0.0.5"}}}
    }
    connection_text = (inv / "group_vars" / "all" / "connection.yml").read_text()
    # site.yml logs in once as the provider's initial user, then as deploy with the operator's key
    assert yaml.safe_load(connection_text) == {
        "ansible_user": "{{ base_deploy_user }}",
        "site_initial_user": "root",
        "base_provider_user": "{{ site_initial_user }}",
        "base_deploy_user": "deploy",
        "base_deploy_ssh_public_keys": [" ".join(public_key.read_text().split()[:2])],
    }
    provider = yaml.safe_load(provider_text)
    assert provider["tengen_vm_provider"] == "digitalocean"
    assert provider["tengen_vm_plan_spec"] == {
        "vcpu": 2,
        "ram_gb": 4,
        "disk_gb": 80,
        "transfer_tb": 4,
        "price_usd": 24,
    }
    assert DO_TOKEN not in hosts_text + provider_text + connection_text

    # second run: nothing changes, nothing is created
    fake_api.reset_calls()
    second = run_playbook(PLAYBOOK, vars_, env())
    assert second.rc == 0, second.out
    assert second.changed == 0, second.out
    assert mutating(calls_of(fake_api)) == []

    # check mode: reads only
    fake_api.reset_calls()
    checked = run_playbook(PLAYBOOK, vars_, env(), check=True)
    assert checked.rc == 0, checked.out
    assert checked.changed == 0, checked.out
    assert mutating(calls_of(fake_api)) == []

    # check mode of the release: would change, mutates nothing
    fake_api.reset_calls()
    check_release = run_playbook(PLAYBOOK, {**vars_, "state": "absent"}, env(), check=True)
    assert check_release.rc == 0, check_release.out
    assert check_release.changed > 0
    assert mutating(calls_of(fake_api)) == []

    # release: the reserved IP, the Droplet, the firewall, the tag and the key
    fake_api.reset_calls()
    release = run_playbook(PLAYBOOK, {**vars_, "state": "absent"}, env())
    assert release.rc == 0, release.out
    ip, droplet_id, firewall_id = reserved["ip"], made["id"], next(iter(state["firewalls"]))
    unassign, delete_ip = ("POST", f"reserved_ips/{ip}/actions"), ("DELETE", f"reserved_ips/{ip}")
    delete_droplet = ("DELETE", f"droplets/{droplet_id}")
    assert_changes(
        mutating(calls_of(fake_api)),
        [unassign, delete_ip, delete_droplet, ("DELETE", f"firewalls/{firewall_id}")]
        + [("DELETE", f"tags/tengen-{NAME}"), ("DELETE", f"account/keys/{fingerprint}")],
        # The IP is found through its Droplet, so it goes first.
        before=((unassign, delete_ip), (delete_ip, delete_droplet)),
    )
    assert fake_api.state()["digitalocean"] == {
        "ssh_keys": {},
        "firewalls": {},
        "droplets": {},
        "reserved_ips": {},
        "tags": {},
    }
    assert not (inv / "hosts.yml").exists()
    assert not (inv / "group_vars" / "all" / "provider.yml").exists()
    assert not (inv / "group_vars" / "all" / "connection.yml").exists()

    # releasing again finds nothing to release
    fake_api.reset_calls()
    again = run_playbook(PLAYBOOK, {**vars_, "state": "absent"}, env())
    assert again.rc == 0, again.out
    assert again.changed == 0, again.out
    assert mutating(calls_of(fake_api)) == []


@pytest.mark.parametrize(
    "override, token, message",
    [
        (
            {"provision_droplet_region": "atlantis1"},
            DO_TOKEN,
            r"provision_droplet_region: 'atlantis1' is not a known value",
        ),
        (
            {"provision_droplet_size": "s-64vcpu-1tb"},
            DO_TOKEN,
            r"provision_droplet_size: 's-64vcpu-1tb' is not a known value",
        ),
        (
            {"provision_droplet_size": "s-1vcpu-1gb"},
            DO_TOKEN,
            r"provision_droplet_size: 's-1vcpu-1gb' has 1 GB of memory, below the 2 GB",
        ),
        ({}, "", r"provision_droplet_api_token is empty"),
        (
            {"provision_droplet_public_key_file": "PRIVATE"},
            DO_TOKEN,
            r"provision_droplet_public_key_file: \S+ is not an SSH public key",
        ),
        (
            {"provision_droplet_name": "Go_Prod"},
            DO_TOKEN,
            r"provision_droplet_name must be lowercase letters, digits and dashes",
        ),
    ],
)
def test_bad_input_fails_before_any_call(
    fake_api: FakeApi, public_key: Path, tmp_path: Path, override: dict, token: str, message: str
) -> None:
    if override.get("provision_droplet_public_key_file") == "PRIVATE":
        override = {"provision_droplet_public_key_file": str(public_key.with_suffix(""))}
    run = run_playbook(PLAYBOOK, extra(fake_api, public_key, tmp_path / "inv", **override), env(token))
    assert run.rc != 0
    assert run.failed == 1
    assert re.search(message, run.out), run.out
    assert fake_api.calls() == []
    assert not (tmp_path / "inv").exists()
    assert DO_TOKEN not in run.out


def test_an_engine_vm_opens_its_engine_port_to_our_droplets_only(
    fake_api: FakeApi, public_key: Path, tmp_path: Path
) -> None:
    inv = tmp_path / "inv"
    vars_ = extra(
        fake_api,
        public_key,
        inv,
        provision_droplet_inventory_group="engines",
        provision_droplet_open_ports=[22],
        provision_droplet_peer_ports=[8001],
    )
    made = run_playbook(PLAYBOOK, vars_, env())
    assert made.rc == 0, made.out
    bodies = {(c["method"], c["path"]): c["body"] for c in fake_api.calls()}
    rules = {
        r["ports"]: {k: v for k, v in r["sources"].items() if v is not None}  # the module sends every key
        for r in bodies[("POST", "firewalls")]["inbound_rules"]
    }
    assert rules == {"22": {"addresses": ["0.0.0.0/0", "::/0"]}, "8001": {"tags": ["tengen"]}}
    hosts = yaml.safe_load((inv / "hosts.yml").read_text())
    assert (
        list(hosts) == ["engines"] and hosts["engines"]["hosts"][NAME]["tengen_private_address"] == "10.0.0.5"
    )
