"""playbooks/backup-bucket.yml against moto_server: the bucket's settings through boto3, a second run
that changes nothing, and the VM's policy: it writes and lists but cannot delete object versions."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.aws

BUCKET = "tengen-backups-test"
USER = "tengen-backup-vm"


def play(endpoint: str, *extra: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    env.pop("AWS_PROFILE", None)
    cmd = [
        str(Path(sys.executable).parent / "ansible-playbook"),
        "-i",
        "localhost,",
        "-e",
        f"ansible_python_interpreter={sys.executable}",
        "-e",
        json.dumps({"backup_bucket_endpoint_url": endpoint, "backup_bucket_name": BUCKET}),
        *extra,
        str(REPO / "playbooks" / "backup-bucket.yml"),
    ]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def changed(run: subprocess.CompletedProcess) -> int:
    return int(re.search(r"^localhost\s+:.*?changed=(\d+)", run.stdout, re.M).group(1))


@pytest.fixture(scope="module")
def runs(moto_server):
    first = play(moto_server)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    second = play(moto_server)
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-2000:]
    return first, second


def client(endpoint: str, service: str):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="eu-west-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def test_the_first_run_builds_and_the_second_changes_nothing(runs):
    first, second = runs
    assert changed(first) >= 4
    assert changed(second) == 0, second.stdout[-4000:]


def test_the_bucket_is_private_encrypted_versioned_and_expires_old_versions(runs, moto_server):
    s3 = client(moto_server, "s3")
    block = s3.get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"]
    assert block == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    rules = s3.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert s3.get_bucket_versioning(Bucket=BUCKET)["Status"] == "Enabled"
    (rule,) = s3.get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]
    assert rule["Status"] == "Enabled" and rule["ID"] == "tengen-backup-retention"
    assert rule["NoncurrentVersionExpiration"]["NoncurrentDays"] == 90
    assert rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 7


def test_the_vm_may_write_read_list_and_retire_but_not_delete_versions(runs, moto_server):
    # moto stores IAM policies but does not enforce them, so the document itself is what is checked here.
    iam = client(moto_server, "iam")
    document = iam.get_user_policy(UserName=USER, PolicyName="tengen-backup-bucket")["PolicyDocument"]
    if isinstance(document, str):
        document = json.loads(document)
    allowed = {a for s in document["Statement"] if s["Effect"] == "Allow" for a in s["Action"]}
    denied = {a for s in document["Statement"] if s["Effect"] == "Deny" for a in s["Action"]}
    assert {"s3:PutObject", "s3:GetObject", "s3:ListBucket", "s3:DeleteObject"} <= allowed
    assert not any("Version" in a or a.endswith("*") for a in allowed)
    assert {"s3:DeleteObjectVersion", "s3:PutBucketVersioning", "s3:PutLifecycleConfiguration"} <= denied
    # What the policy leaves the VM (DeleteObject, its retention) only hides a backup: the version stays.
    s3 = client(moto_server, "s3")
    s3.put_object(Bucket=BUCKET, Key="prod/tengen-20260601T000000Z.json", Body=b"{}")
    s3.delete_object(Bucket=BUCKET, Key="prod/tengen-20260601T000000Z.json")
    versions = s3.list_object_versions(Bucket=BUCKET, Prefix="prod/")
    assert len(versions["Versions"]) == 1 and len(versions["DeleteMarkers"]) == 1


def test_a_bad_bucket_name_is_refused_before_any_change(moto_server):
    run = play(moto_server, "-e", "backup_bucket_name=Not_A_Bucket")
    assert run.returncode != 0 and "backup_bucket_name must be a bucket name" in " ".join(run.stdout.split())
    assert "changed=0" in run.stdout
