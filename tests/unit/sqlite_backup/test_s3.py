"""Offsite copies against moto_server: upload with SSE, restore from the bucket, retention there."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import socket

import boto3
import pytest
from sqlite_helpers import counts

pytestmark = pytest.mark.aws


@pytest.fixture
def bucket(aws_env, request):
    # one bucket per test (parametrized ones too: their names differ only after the first 40 characters)
    digest = hashlib.sha256(request.node.name.encode()).hexdigest()[:8]
    name = f"tengen-bak-{request.node.name.lower().replace('_', '-')[:30].strip('-')}-{digest}"
    client = boto3.client("s3", endpoint_url=aws_env, region_name="eu-west-1")
    client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    return client, name


def target(sb, aws_env, name, **kw):
    # Backups made here without a key pass the explicit opt-out, allow_plaintext_offsite=True.
    return sb.S3Target(bucket=name, prefix="prod/db", endpoint_url=aws_env, region="eu-west-1", **kw)


def test_upload_with_server_side_encryption_and_restore_from_the_bucket(
    sb, live_db, tmp_path, aws_env, bucket, key
):
    client, name = bucket
    s3 = target(sb, aws_env, name, sse="AES256")
    result = sb.create_backup(str(live_db), str(tmp_path / "b"), key=key, s3=s3)
    assert result.uploaded and result.upload_error is None
    assert result.s3_uri == f"s3://{name}/prod/db/{result.manifest['file']}"
    head = client.head_object(Bucket=name, Key=f"prod/db/{result.manifest['file']}")
    assert head["ServerSideEncryption"] == "AES256"
    assert head["ContentLength"] == result.manifest["file_size"]
    # restore from the bucket alone: the local copies are gone
    for p in (tmp_path / "b").iterdir():
        p.unlink()
    restored = sb.fetch_and_unpack(str(tmp_path / "r.db"), s3=s3, key=key)
    assert restored["source"] == result.s3_uri
    assert counts(tmp_path / "r.db") == counts(live_db)


def test_an_upload_without_its_manifest_is_not_taken_for_a_backup(sb, live_db, tmp_path, aws_env, bucket):
    client, name = bucket
    s3 = target(sb, aws_env, name)
    good = sb.create_backup(str(live_db), str(tmp_path / "b"), s3=s3, allow_plaintext_offsite=True)
    partial = sb.create_backup(str(live_db), str(tmp_path / "b"))
    client.upload_file(partial.path, name, f"prod/db/{partial.manifest['file']}")  # data file, no manifest
    assert [b.name for b in sb.list_s3(s3)] == [good.manifest["name"]]


def test_a_corrupted_object_in_the_bucket_is_refused(sb, live_db, tmp_path, aws_env, bucket):
    client, name = bucket
    s3 = target(sb, aws_env, name)
    result = sb.create_backup(str(live_db), str(tmp_path / "b"), s3=s3, allow_plaintext_offsite=True)
    client.put_object(Bucket=name, Key=f"prod/db/{result.manifest['file']}", Body=b"not a backup")
    with pytest.raises(sb.VerificationError, match="sha256 does not match"):
        sb.fetch_and_unpack(str(tmp_path / "r.db"), s3=s3)
    assert not (tmp_path / "r.db").exists()


def test_retention_applies_in_the_bucket_as_it_does_locally(sb, live_db, tmp_path, aws_env, bucket):
    client, name = bucket
    s3 = target(sb, aws_env, name)
    retention = sb.Retention(last=1, hourly=2, daily=2, weekly=1, monthly=1)
    moment = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    for _ in range(12):
        result = sb.create_backup(
            str(live_db),
            str(tmp_path / "b"),
            s3=s3,
            retention=retention,
            now=moment,
            allow_plaintext_offsite=True,
        )
        assert result.uploaded
        moment += dt.timedelta(hours=7)
    local = [b.name for b in sb.list_local(str(tmp_path / "b"))]
    remote = [b.name for b in sb.list_s3(s3)]
    # Sun 3 May 22:00 (the last hours and days holding a backup) and Mon 4 May 05:00 (also week, month)
    assert remote == local == ["tengen-20260503T220000Z", "tengen-20260504T050000Z"]
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=name)["Contents"]}
    assert len(keys) == 2 * len(local)  # a data file and a manifest each, nothing orphaned


@pytest.mark.parametrize(
    "stray",
    [
        b'{"note": "lifecycle export, not a backup"}',
        b"[1, 2, 3]",
        b"not json at all",
        b'{"name": "x", "created": "yesterday", "file": "x.db.gz", "sha256": "0", "db_sha256": "0",'
        b' "compression": "gzip"}',
    ],
    ids=["other-json", "json-list", "not-json", "bad-time"],
)
def test_a_stray_json_object_under_the_prefix_is_skipped_by_restore_drill_and_retention(
    sb, live_db, tmp_path, aws_env, bucket, key, caplog, stray
):
    client, name = bucket
    s3 = target(sb, aws_env, name)
    retention = sb.Retention(last=1, hourly=1, daily=1, weekly=1, monthly=1)
    first = sb.create_backup(str(live_db), str(tmp_path / "b"), key=key, s3=s3)
    client.put_object(Bucket=name, Key="prod/db/zz-inventory.json", Body=stray)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    second = sb.create_backup(
        str(live_db), str(tmp_path / "b"), key=key, s3=s3, retention=retention, now=later
    )
    assert second.uploaded and second.upload_error is None
    assert second.pruned_s3 == [first.manifest["name"]]  # retention still works in the bucket
    assert second.skipped_s3 == ["zz-inventory.json"]
    assert "zz-inventory.json" in caplog.text
    restored = sb.fetch_and_unpack(str(tmp_path / "r.db"), s3=s3, key=key)
    assert restored["name"] == second.manifest["name"] and restored["skipped"] == ["zz-inventory.json"]
    assert counts(tmp_path / "r.db") == counts(live_db)
    # the stray object is left where it was
    assert client.get_object(Bucket=name, Key="prod/db/zz-inventory.json")["Body"].read() == stray


def test_an_encrypted_backup_shows_offsite_only_what_retention_and_restore_selection_need(
    sb, live_db, tmp_path, aws_env, bucket, key
):
    client, name = bucket
    s3 = target(sb, aws_env, name)
    retention = sb.Retention(last=1, hourly=1, daily=1, weekly=1, monthly=1)
    first = sb.create_backup(str(live_db), str(tmp_path / "b"), key=key, s3=s3)
    assert first.manifest["host"] and first.manifest["tables"]  # the local manifest keeps everything
    public = json.loads(
        client.get_object(Bucket=name, Key=f"prod/db/{first.manifest['name']}.json")["Body"].read()
    )
    assert set(public) == {
        "format",
        "name",
        "created",
        "compression",
        "file",
        "file_size",
        "sha256",
        "db_size",
        "integrity_check",
        "encryption",
        "sealed",
    }
    assert public["encryption"]["key_id"] == first.manifest["encryption"]["key_id"]
    # nothing in the bucket names the host, the database's path or its tables in clear
    for obj in client.list_objects_v2(Bucket=name)["Contents"]:
        raw = client.get_object(Bucket=name, Key=obj["Key"])["Body"].read()
        for secret in (
            socket.getfqdn(),
            str(live_db),
            "schema_version",
            "black_token",
            first.manifest["db_sha256"],
        ):
            assert secret.encode() not in raw, f"{secret!r} in clear in {obj['Key']}"
    # restore from the bucket alone gives the whole manifest back, and the row counts checked against it
    for p in (tmp_path / "b").iterdir():
        p.unlink()
    restored = sb.fetch_and_unpack(str(tmp_path / "r.db"), s3=s3, key=key)
    assert restored["manifest"]["tables"] == first.manifest["tables"] == counts(tmp_path / "r.db")
    # retention in the bucket takes the sidecar with its backup: nothing orphaned
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    second = sb.create_backup(
        str(live_db), str(tmp_path / "b"), key=key, s3=s3, retention=retention, now=later
    )
    assert second.pruned_s3 == [first.manifest["name"]]
    keys = sorted(o["Key"].rsplit("/", 1)[1] for o in client.list_objects_v2(Bucket=name)["Contents"])
    n = second.manifest["name"]
    assert keys == sorted([second.manifest["file"], f"{n}.json", f"{n}.meta.enc"])


def test_a_tampered_sealed_manifest_is_refused(sb, live_db, tmp_path, aws_env, bucket, key):
    client, name = bucket
    s3 = target(sb, aws_env, name)
    made = sb.create_backup(str(live_db), str(tmp_path / "b"), key=key, s3=s3)
    sidecar_key = f"prod/db/{made.manifest['name']}.meta.enc"
    blob = bytearray(client.get_object(Bucket=name, Key=sidecar_key)["Body"].read())
    blob[len(blob) // 2] ^= 0xFF
    client.put_object(Bucket=name, Key=sidecar_key, Body=bytes(blob))
    with pytest.raises(sb.VerificationError, match="sha256 does not match"):
        sb.fetch_and_unpack(str(tmp_path / "r.db"), s3=s3, key=key)
    assert not (tmp_path / "r.db").exists()
