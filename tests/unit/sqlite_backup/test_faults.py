"""Faults: a full disk, a corrupted file, a wrong key, an unreachable bucket. Each fails loudly and
leaves the live database and the earlier backups as they were."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from sqlite_helpers import counts, crashed_backend, file_digests, make_db

from tests.conftest import free_port
from tests.games_db import grow


@pytest.mark.parametrize(
    ("grow_mb", "where"),
    [
        (8, "the online copy"),
        (4, "the compressed file"),
    ],  # the copy alone overflows / copy fits, then its gzip not
)
def test_a_disk_that_fills_during_backup_fails_and_leaves_nothing_half_done(
    sb, tmp_path, small_disk, grow_mb, where
):
    db = make_db(tmp_path / "tengen.db", rows=100)
    earlier = sb.create_backup(str(db), str(small_disk))
    before = file_digests(small_disk)
    grow(db, grow_mb)
    live_before = sb.sha256_file(str(db)), counts(db)

    with pytest.raises(sb.BackupError, match="full|No space left") as failure:
        sb.create_backup(str(db), str(small_disk))
    assert ("online copy" in str(failure.value)) == (where == "the online copy"), str(failure.value)

    assert file_digests(small_disk) == before, f"a full disk during {where} left files behind or changed some"
    assert [b.name for b in sb.list_local(str(small_disk))] == [earlier.manifest["name"]]
    assert (sb.sha256_file(str(db)), counts(db)) == live_before
    assert sb.integrity_check(str(db)) == "ok"
    sb.unpack_backup(earlier.path, earlier.manifest, str(tmp_path / "earlier.db"))  # still restores


def test_a_corrupted_backup_file_is_refused_before_anything_is_written(sb, live_db, tmp_path):
    result = sb.create_backup(str(live_db), str(tmp_path / "b"))
    data = bytearray(Path(result.path).read_bytes())
    data[len(data) // 2] ^= 0xFF
    Path(result.path).write_bytes(bytes(data))
    dest = tmp_path / "restore" / "tengen.db"
    dest.parent.mkdir()
    with pytest.raises(sb.VerificationError, match="sha256 does not match the manifest"):
        sb.unpack_backup(result.path, result.manifest, str(dest))
    assert list(dest.parent.iterdir()) == []


def test_corruption_behind_a_matching_checksum_is_still_caught(sb, live_db, tmp_path):
    """Someone 'fixes' the manifest's file checksum: decompression or the database checksum still catch it."""
    result = sb.create_backup(str(live_db), str(tmp_path / "b"))
    data = bytearray(Path(result.path).read_bytes())
    data[len(data) // 2] ^= 0xFF
    Path(result.path).write_bytes(bytes(data))
    manifest = {**result.manifest, "sha256": sb.sha256_file(result.path)}
    with pytest.raises(sb.VerificationError, match="decompression failed|database's sha256"):
        sb.unpack_backup(result.path, manifest, str(tmp_path / "r.db"))
    assert not (tmp_path / "r.db").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")] == []


def test_a_wrong_key_is_named_as_such_and_a_forged_key_id_fails_authentication(sb, live_db, tmp_path, key):
    result = sb.create_backup(str(live_db), str(tmp_path / "b"), key=key)
    other = base64.b64encode(os.urandom(32)).decode()
    with pytest.raises(sb.VerificationError, match="wrong encryption key"):
        sb.unpack_backup(result.path, result.manifest, str(tmp_path / "r.db"), other)
    forged = {
        **result.manifest,
        "encryption": {"algorithm": "AES-256-GCM", "key_id": sb.key_id(sb.load_key(other))},
    }
    with pytest.raises(sb.VerificationError, match="decryption failed"):
        sb.unpack_backup(result.path, forged, str(tmp_path / "r.db"), other)
    with pytest.raises(sb.VerificationError, match="an encryption key is needed"):
        sb.unpack_backup(result.path, result.manifest, str(tmp_path / "r.db"), None)
    assert not (tmp_path / "r.db").exists()
    sb.unpack_backup(result.path, result.manifest, str(tmp_path / "r.db"), key)
    assert counts(tmp_path / "r.db") == counts(live_db)


def test_the_ciphertext_hides_the_database(sb, live_db, tmp_path, key):
    result = sb.create_backup(str(live_db), str(tmp_path / "b"), key=key, compression="none")
    blob = Path(result.path).read_bytes()
    assert b"SQLite format 3" not in blob and b"schema_version" not in blob


@pytest.mark.parametrize("bad", ["short", base64.b64encode(b"x" * 16).decode(), "g" * 64])
def test_malformed_keys_are_refused_before_any_change(sb, live_db, tmp_path, bad):
    with pytest.raises(sb.BackupError, match="32 random bytes"):
        sb.create_backup(str(live_db), str(tmp_path / "b"), key=bad)
    assert not (tmp_path / "b").exists()


def test_an_unreachable_bucket_keeps_the_local_backup_and_reports_the_failure(sb, live_db, tmp_path, key):
    backups = tmp_path / "b"
    earlier = sb.create_backup(str(live_db), str(backups))
    before = file_digests(backups)
    live_before = sb.sha256_file(str(live_db))
    target = sb.S3Target(
        bucket="tengen",
        endpoint_url=f"http://127.0.0.1:{free_port()}",  # nothing listens there
        region="eu-west-1",
        access_key="x",
        secret_key="y",
        connect_timeout=1,
    )
    result = sb.create_backup(str(live_db), str(backups), key=key, s3=target, retention=sb.Retention())
    assert not result.uploaded
    assert "upload to s3://tengen/" in result.upload_error and "failed" in result.upload_error
    assert Path(result.path).is_file() and result.manifest["integrity_check"] == "ok"
    after = file_digests(backups)
    assert {k: after[k] for k in before} == before  # the earlier backup is untouched
    assert {b.name for b in sb.list_local(str(backups))} == {
        earlier.manifest["name"],
        result.manifest["name"],
    }
    assert sb.sha256_file(str(live_db)) == live_before


def test_the_timer_command_reports_an_unreachable_bucket_in_its_exit_code_and_status(
    sb, live_db, tmp_path, key
):
    status = tmp_path / "state" / "status.json"
    env = {
        "TENGEN_BACKUP_DB": str(live_db),
        "TENGEN_BACKUP_DIR": str(tmp_path / "b"),
        "TENGEN_BACKUP_STATUS_FILE": str(status),
        "TENGEN_BACKUP_TEXTFILE": str(tmp_path / "state" / "backup.prom"),
        "TENGEN_BACKUP_S3_BUCKET": "tengen",
        "TENGEN_BACKUP_ENCRYPTION_KEY": key,
        "TENGEN_BACKUP_S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
        "TENGEN_BACKUP_S3_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "y",
    }
    assert sb.cli_main(["backup"], env) == 3
    state = json.loads(status.read_text())
    assert state["last_result"] == "failed" and "upload to s3://tengen/" in state["error"]
    assert state["location"].startswith(str(tmp_path / "b"))  # the local copy exists and is recorded
    assert "tengen_backup_last_run_ok 0" in (tmp_path / "state" / "backup.prom").read_text()
    assert len(sb.list_local(str(tmp_path / "b"))) == 1


def test_the_timer_command_records_failure_and_keeps_the_last_success(sb, tmp_path):
    db = make_db(tmp_path / "tengen.db", rows=10)
    status = tmp_path / "status.json"
    env = {
        "TENGEN_BACKUP_DB": str(db),
        "TENGEN_BACKUP_DIR": str(tmp_path / "b"),
        "TENGEN_BACKUP_STATUS_FILE": str(status),
    }
    assert sb.cli_main(["backup"], env) == 0
    first = json.loads(status.read_text())
    assert first["last_result"] == "ok" and first["size_bytes"] > 0
    db.unlink()
    assert sb.cli_main(["backup"], env) == 1
    second = json.loads(status.read_text())
    assert second["last_result"] == "failed" and "does not exist" in second["error"]
    assert second["last_success"] == first["last_success"] and second["name"] == first["name"]
    assert sb.cli_main(["verify"], env) == 0
    assert sb.cli_main(["list"], env) == 0


def test_swap_keeps_the_replaced_database_with_its_wal_and_never_replays_it(sb, live_db, tmp_path):
    backup = sb.create_backup(str(live_db), str(tmp_path / "b"))
    crashed_backend(live_db, 7)  # the backend crashed after more writes: its WAL is still beside the database
    staged = live_db.parent / ".restore.db"
    sb.unpack_backup(backup.path, backup.manifest, str(staged))
    os.chmod(live_db, 0o640)
    swapped = sb.swap_database(str(staged), str(live_db), ".pre-restore")
    assert swapped["kept"][0] == f"{live_db}.pre-restore"
    assert not Path(f"{live_db}-wal").exists() and not staged.exists()
    assert counts(live_db)["games"] == backup.manifest["tables"]["games"] == 50
    assert live_db.stat().st_mode & 0o777 == 0o640
    assert counts(f"{live_db}.pre-restore")["games"] == 57  # the kept one still holds the crash's rows
    assert sb.integrity_check(str(live_db)) == "ok"


def test_swap_refuses_a_staged_file_that_is_not_a_whole_database(sb, live_db, tmp_path):
    staged = live_db.parent / ".restore.db"
    staged.write_bytes(b"SQLite format 3\0" + b"\0" * 100)
    before = sb.sha256_file(str(live_db))
    with pytest.raises(sb.VerificationError, match="nothing swapped"):
        sb.swap_database(str(staged), str(live_db), ".pre-restore")
    assert sb.sha256_file(str(live_db)) == before and not Path(f"{live_db}.pre-restore").exists()
