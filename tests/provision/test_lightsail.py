"""playbooks/provision/lightsail.yml against the local recording endpoint (not AWS itself).

What is exercised: argument validation, the Lightsail API calls that change something (in order only
where one needs another), the bodies we send, idempotence, check mode, release, and the rendered
inventory. What is not:
AWS's own behaviour (real instance boot, real IPs, IAM permissions, the debian_13 blueprint's
availability, snapshot creation), which only a run against AWS can show.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from provision_harness import AWS_KEY_ID, AWS_SECRET, DO_TOKEN, FakeApi, assert_changes, run_playbook

PLAYBOOK = "playbooks/provision/lightsail.yml"
NAME = "go-test"
MUTATING = {
    "ImportKeyPair",
    "DeleteKeyPair",
    "CreateInstances",
    "DeleteInstance",
    "PutInstancePublicPorts",
    "AllocateStaticIp",
    "AttachStaticIp",
    "DetachStaticIp",
    "ReleaseStaticIp",
    "EnableAddOn",
    "DisableAddOn",
}

# The changing calls of each run; the reads around them are the modules' own business.
CREATE_CHANGES = [
    "ImportKeyPair",
    "CreateInstances",
    "PutInstancePublicPorts",
    "AllocateStaticIp",
    "AttachStaticIp",
    "EnableAddOn",
]
CREATE_ORDER = (
    ("ImportKeyPair", "CreateInstances"),  # the instance is made with the key
    ("CreateInstances", "PutInstancePublicPorts"),
    ("AllocateStaticIp", "AttachStaticIp"),
    ("CreateInstances", "AttachStaticIp"),
    ("CreateInstances", "EnableAddOn"),
)
# The second run: community.aws.lightsail sends PutInstancePublicPorts on every run with the same
# port list (it reports no change when the instance is the same afterwards).
SECOND_CHANGES = ["PutInstancePublicPorts"]
RELEASE_CHANGES = ["DetachStaticIp", "ReleaseStaticIp", "DeleteInstance", "DeleteKeyPair"]
RELEASE_ORDER = (("DetachStaticIp", "ReleaseStaticIp"),)


def env() -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": AWS_KEY_ID, "AWS_SECRET_ACCESS_KEY": AWS_SECRET}


def extra(api: FakeApi, key: Path, inv: Path, **more: object) -> dict:
    return {
        "provision_lightsail_name": NAME,
        "provision_lightsail_region": "eu-west-1",
        "provision_lightsail_public_key_file": str(key),
        "provision_lightsail_endpoint_url": api.url,
        "provision_lightsail_inventory_dir": str(inv),
        "provision_lightsail_wait_for_ssh": False,
        **more,
    }


def ops(calls: list[dict]) -> list[str]:
    assert all(c["api"] == "lightsail" for c in calls)
    return [c["op"] for c in calls]


def assert_no_secret(text: str) -> None:
    assert AWS_SECRET not in text
    assert AWS_KEY_ID not in text


def test_create_rerun_check_and_release(fake_api: FakeApi, rsa_public_key: Path, tmp_path: Path) -> None:
    public_key = rsa_public_key
    inv = tmp_path / "inv"
    vars_ = extra(fake_api, public_key, inv)

    # check mode on nothing: would change, mutates nothing, writes no inventory
    dry = run_playbook(PLAYBOOK, vars_, env(), check=True)
    assert dry.rc == 0, dry.out
    assert dry.changed > 0
    assert not MUTATING & set(ops(fake_api.calls()))
    assert not (inv / "hosts.yml").exists()
    fake_api.reset_calls()

    # create
    first = run_playbook(PLAYBOOK, vars_, env())
    assert first.rc == 0, first.out
    calls = fake_api.calls()
    assert_changes([op for op in ops(calls) if op in MUTATING], CREATE_CHANGES, before=CREATE_ORDER)
    assert {c["region"] for c in calls} == {"eu-west-1"}
    by_op = {c["op"]: c["body"] for c in calls}
    assert by_op["ImportKeyPair"] == {
        "keyPairName": NAME,
        "publicKeyBase64": " ".join(public_key.read_text().split()[:2]),
    }
    create = by_op["CreateInstances"]
    assert create["instanceNames"] == [NAME]
    assert create["availabilityZone"] == "eu-west-1a"
    assert create["blueprintId"] == "debian_13"
    assert create["bundleId"] == "medium_3_0"
    assert create["keyPairName"] == NAME
    ports = by_op["PutInstancePublicPorts"]["portInfos"]
    assert sorted((p["fromPort"], p["toPort"], p["protocol"]) for p in ports) == [
        (22, 22, "tcp"),
        (80, 80, "tcp"),
        (443, 443, "tcp"),
    ]
    assert all(p["cidrs"] == ["0.0.0.0/0"] and p["ipv6Cidrs"] == ["::/0"] for p in ports)
    assert by_op["AttachStaticIp"] == {"staticIpName": f"{NAME}-ip", "instanceName": NAME}
    assert by_op["EnableAddOn"] == {
        "resourceName": NAME,
        "addOnRequest": {
            "addOnType": "AutoSnapshot",
            "autoSnapshotAddOnRequest": {"snapshotTimeOfDay": "06:00"},
        },
    }
    for c in calls:
        assert_no_secret(str(c))
    assert_no_secret(first.out)

    # the inventory points at the static IP, with the Debian login user, and holds no secret
    static_ip = fake_api.state()["lightsail"]["static_ips"][f"{NAME}-ip"]["ipAddress"]
    hosts_text = (inv / "hosts.yml").read_text()
    provider_text = (inv / "group_vars" / "all" / "provider.yml").read_text()
    hosts = yaml.safe_load(hosts_text)
    # with the instance's private address, where engine VMs and the game VM talk
    assert hosts == {
        "vm": {"hosts": {NAME: {"ansible_host": static_ip, "tengen_private_address": "172.26.0.10"}}}
    }
    connection_text = (inv / "group_vars" / "all" / "connection.yml").read_text()
    # site.yml logs in once as the provider's initial user, then as deploy with the operator's key
    assert yaml.safe_load(connection_text) == {
        "ansible_user": "{{ base_deploy_user }}",
        "site_initial_user": "admin",
        "base_provider_user": "{{ site_initial_user }}",
        "base_deploy_user": "deploy",
        "base_deploy_ssh_public_keys": [" ".join(public_key.read_text().split()[:2])],
    }
    provider = yaml.safe_load(provider_text)
    assert provider["tengen_vm_provider"] == "aws_lightsail"
    assert provider["tengen_vm_plan"] == "medium_3_0"
    assert provider["tengen_vm_plan_spec"]["ram_gb"] == 4
    for text in (hosts_text, provider_text, connection_text):
        assert_no_secret(text)
        assert DO_TOKEN not in text

    # second run: nothing changes, nothing is created
    fake_api.reset_calls()
    second = run_playbook(PLAYBOOK, vars_, env())
    assert second.rc == 0, second.out
    assert second.changed == 0, second.out
    assert_changes([op for op in ops(fake_api.calls()) if op in MUTATING], SECOND_CHANGES)

    # check mode: reads only
    fake_api.reset_calls()
    checked = run_playbook(PLAYBOOK, vars_, env(), check=True)
    assert checked.rc == 0, checked.out
    assert checked.changed == 0, checked.out
    assert not MUTATING & set(ops(fake_api.calls()))

    # check mode of the release: would change, calls nothing that mutates
    fake_api.reset_calls()
    check_release = run_playbook(PLAYBOOK, {**vars_, "state": "absent"}, env(), check=True)
    assert check_release.rc == 0, check_release.out
    assert check_release.changed > 0
    assert not MUTATING & set(ops(fake_api.calls()))
    assert (inv / "hosts.yml").exists()

    # release everything
    fake_api.reset_calls()
    release = run_playbook(PLAYBOOK, {**vars_, "state": "absent"}, env())
    assert release.rc == 0, release.out
    released = [op for op in ops(fake_api.calls()) if op in MUTATING]
    assert_changes(released, RELEASE_CHANGES, before=RELEASE_ORDER)
    state = fake_api.state()["lightsail"]
    assert state == {"key_pairs": {}, "instances": {}, "static_ips": {}}
    assert not (inv / "hosts.yml").exists()
    assert not (inv / "group_vars" / "all" / "provider.yml").exists()
    assert not (inv / "group_vars" / "all" / "connection.yml").exists()

    # releasing again finds nothing to release
    fake_api.reset_calls()
    again = run_playbook(PLAYBOOK, {**vars_, "state": "absent"}, env())
    assert again.rc == 0, again.out
    assert again.changed == 0, again.out
    assert not MUTATING & set(ops(fake_api.calls()))


@pytest.mark.parametrize(
    "override, env_override, message",
    [
        (
            {"provision_lightsail_region": "mars-north-1"},
            {},
            r"provision_lightsail_region: 'mars-north-1' is not a known value",
        ),
        (
            {"provision_lightsail_bundle": "huge_9_0"},
            {},
            r"provision_lightsail_bundle: 'huge_9_0' is not a known value",
        ),
        (
            {"provision_lightsail_bundle": "micro_3_0"},
            {},
            r"provision_lightsail_bundle: 'micro_3_0' has 1 GB of memory, below the 2 GB",
        ),
        ({}, {"AWS_SECRET_ACCESS_KEY": ""}, r"provision_lightsail_secret_key is empty"),
        ({}, {"AWS_ACCESS_KEY_ID": ""}, r"provision_lightsail_access_key is empty"),
        (
            {"provision_lightsail_public_key_file": "PRIVATE"},
            {},
            r"provision_lightsail_public_key_file: \S+ is not an SSH public key",
        ),
        (
            {"provision_lightsail_public_key_file": "ED25519"},
            {},
            r"provision_lightsail_public_key_file: \S+ is an ssh-ed25519 key; this provider takes only",
        ),
        (
            {"provision_lightsail_snapshot_time": "6am"},
            {},
            r'provision_lightsail_snapshot_time a whole hour, HH:00 UTC \(got \\?"6am\\?"\)',
        ),
        (
            {"provision_lightsail_zone": "us-east-1a"},
            {},
            r'provision_lightsail_zone a zone of provision_lightsail_region \(got \\?"us-east-1a\\?"\)',
        ),
        (
            {"provision_lightsail_auto_snapshot": "sometimes"},
            {},
            r"argument .provision_lightsail_auto_snapshot. is of type str and we were unable to convert",
        ),
    ],
)
def test_bad_input_fails_before_any_call(
    fake_api: FakeApi,
    rsa_public_key: Path,
    public_key: Path,
    tmp_path: Path,
    override: dict,
    env_override: dict,
    message: str,
) -> None:
    # the key is the RSA one unless a case swaps in its private half or an ed25519 key
    stand_in = {"PRIVATE": str(rsa_public_key.with_suffix("")), "ED25519": str(public_key)}
    if override.get("provision_lightsail_public_key_file") in stand_in:
        override = {
            "provision_lightsail_public_key_file": stand_in[override["provision_lightsail_public_key_file"]]
        }
    public_key = rsa_public_key
    run = run_playbook(
        PLAYBOOK, extra(fake_api, public_key, tmp_path / "inv", **override), {**env(), **env_override}
    )
    assert run.rc != 0
    assert run.failed == 1
    assert re.search(message, run.out), run.out
    assert fake_api.calls() == []
    assert not (tmp_path / "inv").exists()
    assert_no_secret(run.out)
