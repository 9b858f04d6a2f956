"""Our provider modules on their own, against the local recording endpoint: each call twice
(changed, then not), check mode, and the failures they report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from provision_harness import AWS_KEY_ID, AWS_SECRET, DO_TOKEN, REPO, FakeApi

ANSIBLE = str(Path(sys.executable).parent / "ansible")


def module(name: str, args: dict, check: bool = False) -> dict:
    """Run one module on localhost; returns its result (written by `ansible --tree`)."""
    with tempfile.TemporaryDirectory() as tree:
        cmd = [ANSIBLE, "localhost", "-c", "local", "-i", "localhost,", "-t", tree]
        cmd += ["-e", f"ansible_python_interpreter={sys.executable}"]
        cmd += ["-m", f"tengen.ops.{name}", "-a", json.dumps(args)]
        if check:
            cmd.append("--check")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DO_"))}
        env.update(
            ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
            AWS_ACCESS_KEY_ID=AWS_KEY_ID,
            AWS_SECRET_ACCESS_KEY=AWS_SECRET,
        )
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        result = Path(tree) / "localhost"
        assert result.exists(), proc.stdout + proc.stderr
        # the tree holds the module's result; whether the task failed is the exit code
        return {**json.loads(result.read_text()), "failed": proc.returncode != 0}


def ops(api: FakeApi) -> list[str]:
    return [c["op"] if c["api"] == "lightsail" else f"{c['method']} {c['path']}" for c in api.calls()]


def test_lightsail_key_pair(fake_api: FakeApi, rsa_public_key: Path) -> None:
    aws = {"region": "eu-west-2", "endpoint_url": fake_api.url}
    args = {"name": "k1", "public_key": rsa_public_key.read_text().strip(), **aws}
    assert module("lightsail_key_pair", args, check=True)["changed"] is True
    assert ops(fake_api) == ["GetKeyPair"]
    assert module("lightsail_key_pair", args)["changed"] is True
    assert module("lightsail_key_pair", args)["changed"] is False
    assert ops(fake_api) == ["GetKeyPair", "GetKeyPair", "ImportKeyPair", "GetKeyPair", "GetKeyPair"]
    fake_api.reset_calls()
    gone = {"name": "k1", "state": "absent", **aws}
    assert module("lightsail_key_pair", gone, check=True)["changed"] is True
    assert module("lightsail_key_pair", gone)["changed"] is True
    assert module("lightsail_key_pair", gone)["changed"] is False
    assert ops(fake_api) == ["GetKeyPair", "GetKeyPair", "DeleteKeyPair", "GetKeyPair"]


def test_lightsail_attachment_and_snapshot_refuse_what_is_missing(fake_api: FakeApi) -> None:
    aws = {"region": "eu-west-2", "endpoint_url": fake_api.url}
    attach = module("lightsail_static_ip_attachment", {"name": "ip1", "instance_name": "vm1", **aws})
    assert attach.get("failed") and "static IP ip1 does not exist" in attach["msg"]
    snap = module("lightsail_auto_snapshot", {"instance_name": "vm1", **aws})
    assert snap.get("failed") and "instance vm1 does not exist" in snap["msg"]
    bad_time = module("lightsail_auto_snapshot", {"instance_name": "vm1", "snapshot_time": "6am", **aws})
    assert bad_time.get("failed") and "snapshot_time must be HH:00" in bad_time["msg"]
    # the bad time is refused before any call; the other two only looked
    assert ops(fake_api) == ["GetStaticIp", "GetInstance"]


def test_digital_ocean_reserved_ip(fake_api: FakeApi) -> None:
    base = {"droplet_name": "d1", "api_url": f"{fake_api.url}/v2", "oauth_token": DO_TOKEN}
    # a Droplet to assign to, made directly through the fake API (not under test here)
    req = urllib.request.Request(
        f"{fake_api.url}/v2/droplets",
        data=json.dumps(
            {"name": "d1", "size": "s-2vcpu-4gb", "image": "debian-13-x64", "region": "fra1"}
        ).encode(),
        headers={"Authorization": f"Bearer {DO_TOKEN}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        droplet_id = json.load(resp)["droplet"]["id"]
    fake_api.reset_calls()

    assert module("digital_ocean_reserved_ip", base, check=True)["changed"] is True
    no_id = module("digital_ocean_reserved_ip", base)
    assert no_id.get("failed") and "droplet_id is required" in no_id["msg"]
    made = module("digital_ocean_reserved_ip", {**base, "droplet_id": droplet_id})
    assert made["changed"] is True and made["ip"]
    again = module("digital_ocean_reserved_ip", {**base, "droplet_id": droplet_id})
    assert again["changed"] is False and again["ip"] == made["ip"]
    assert [c for c in ops(fake_api) if not c.startswith("GET")] == ["POST reserved_ips"]

    fake_api.reset_calls()
    gone = {**base, "state": "absent"}
    assert module("digital_ocean_reserved_ip", gone, check=True)["changed"] is True
    assert module("digital_ocean_reserved_ip", gone)["changed"] is True
    assert module("digital_ocean_reserved_ip", gone)["changed"] is False
    assert [c for c in ops(fake_api) if not c.startswith("GET")] == [
        f"POST reserved_ips/{made['ip']}/actions",
        f"DELETE reserved_ips/{made['ip']}",
    ]
    assert fake_api.state()["digitalocean"]["reserved_ips"] == {}

    # a wrong token is refused by the API and reported, without the token in the message
    wrong = module("digital_ocean_reserved_ip", {**base, "oauth_token": "wrong-token-123"})
    assert wrong.get("failed") and "HTTP 401" in wrong["msg"]
    assert "wrong-token-123" not in json.dumps(wrong)
