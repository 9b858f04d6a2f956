"""Backup formats: zstd (format 2, the default) and the gzip backups format 1 left on disks and in
buckets, which restore, verify, drills and retention must keep reading."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from sqlite_helpers import counts, file_digests

from tests import games_db

FORMAT_1 = Path(__file__).resolve().parents[1] / "data" / "backup-format-1"
FORMAT_1_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="  # bytes 0..31, README.md there
PLAIN_1, SEALED_1 = "tengen-20261201T120000Z", "tengen-20261201T121500Z"


@pytest.fixture
def format_1(tmp_path: Path) -> Path:
    """A backup directory holding the two backups format 1 made (a copy: the tests change it)."""
    directory = tmp_path / "backups"
    shutil.copytree(FORMAT_1, directory, ignore=shutil.ignore_patterns("*.md"))
    return directory


def test_gzip_backups_of_format_1_restore_verify_and_drill_as_before(sb, format_1, tmp_path):
    listed = {b.name: b for b in sb.list_local(str(format_1))}
    assert sorted(listed) == [PLAIN_1, SEALED_1] and all(b.verified for b in listed.values())
    assert {b.manifest["format"] for b in listed.values()} == {1}
    for name, key in ((PLAIN_1, None), (SEALED_1, FORMAT_1_KEY)):
        dest = tmp_path / f"{name}.db"
        result = sb.fetch_and_unpack(str(dest), backup_dir=str(format_1), wanted=name, key=key)
        assert result["source"].endswith(".db.gz.enc" if key else ".db.gz")
        assert counts(dest) == {"games": 20, "schema_version": 2} == result["tables"]
        assert sum(games_db.move_counts(dest).values()) == 300
        assert hashlib.sha256(dest.read_bytes()).hexdigest() == listed[name].manifest["db_sha256"]
    # the VM's command verifies the newest (the encrypted one) with the keyring
    env = {"TENGEN_BACKUP_DIR": str(format_1), "TENGEN_BACKUP_ENCRYPTION_KEYS": f"{FORMAT_1_KEY}"}
    assert sb.cli_main(["verify", PLAIN_1], env=env) == 0
    assert sb.cli_main(["verify"], env=env) == 0
    assert sb.cli_main(["verify"], env={"TENGEN_BACKUP_DIR": str(format_1)}) == 1  # no key: refused


def test_a_corrupted_format_1_backup_is_still_refused_before_anything_is_written(sb, format_1, tmp_path):
    data = format_1 / f"{PLAIN_1}.db.gz"
    blob = bytearray(data.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    data.write_bytes(bytes(blob))
    (tmp_path / "r").mkdir()
    with pytest.raises(sb.VerificationError, match="sha256 does not match the manifest"):
        sb.fetch_and_unpack(str(tmp_path / "r" / "x.db"), backup_dir=str(format_1), wanted=PLAIN_1)
    assert list((tmp_path / "r").iterdir()) == []


def test_retention_prunes_gzip_and_zstd_backups_alike(sb, format_1, live_db):
    later = dt.datetime(2026, 12, 1, 12, 30, tzinfo=dt.UTC)
    made = sb.create_backup(str(live_db), str(format_1), now=later, max_local=1)
    assert made.path.endswith(".db.zst") and made.manifest["format"] == 2
    assert made.pruned_local == [PLAIN_1, SEALED_1]
    assert sorted(p.name for p in format_1.iterdir() if not p.name.startswith(".")) == sorted(
        [made.manifest["file"], f"{made.manifest['name']}.json"]
    )


def test_a_zstd_backup_is_one_zstd_stream_whose_checksums_are_those_of_its_file_and_database(
    sb, live_db, tmp_path, key
):
    for with_key in (None, key):
        result = sb.create_backup(str(live_db), str(tmp_path / "b"), key=with_key)
        m = result.manifest
        assert (m["format"], m["compression"]) == (2, "zstd")
        assert m["file"].endswith(".db.zst.enc" if with_key else ".db.zst")
        data = Path(result.path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == m["sha256"] and len(data) == m["file_size"]
        restored = tmp_path / f"r-{bool(with_key)}.db"
        sb.unpack_backup(result.path, m, str(restored), with_key)
        assert hashlib.sha256(restored.read_bytes()).hexdigest() == m["db_sha256"]
        assert restored.stat().st_size == m["db_size"] and counts(restored) == m["tables"]
        if not with_key:  # the zstd command itself reads it back to the same database
            plain = subprocess.run(["zstd", "-d", "-c", result.path], capture_output=True, check=True).stdout
            assert hashlib.sha256(plain).hexdigest() == m["db_sha256"]


def test_a_damaged_zstd_stream_fails_decompression_and_a_truncated_file_fails_its_checksum(
    sb, live_db, tmp_path
):
    result = sb.create_backup(str(live_db), str(tmp_path / "b"))
    original = Path(result.path).read_bytes()
    (tmp_path / "r").mkdir()
    dest = tmp_path / "r" / "x.db"

    damaged = bytearray(original)
    damaged[len(damaged) // 2] ^= 0xFF
    Path(result.path).write_bytes(bytes(damaged))
    forged = dict(result.manifest, sha256=hashlib.sha256(damaged).hexdigest())  # the checksum "fixed" too
    with pytest.raises(sb.VerificationError, match="decompression failed|database's sha256|more than"):
        sb.unpack_backup(result.path, forged, str(dest))
    assert list(dest.parent.iterdir()) == []

    Path(result.path).write_bytes(original[: len(original) // 2])
    with pytest.raises(sb.VerificationError, match="sha256 does not match the manifest"):
        sb.unpack_backup(result.path, result.manifest, str(dest))
    assert list(dest.parent.iterdir()) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": 3}, "is of format 3; this version reads formats 1, 2"),
        ({"compression": "brotli"}, "unknown compression 'brotli'"),
        ({"compression": "gzip"}, "is not the file of a gzip backup"),
    ],
)
def test_a_manifest_this_version_cannot_read_is_named_and_never_restored(
    sb, live_db, tmp_path, change, message
):
    result = sb.create_backup(str(live_db), str(tmp_path / "b"))
    path = Path(result.manifest_path)
    path.write_text(json.dumps(dict(result.manifest, **change)))
    with pytest.raises(sb.VerificationError, match=message):
        sb._parse_manifest(path.read_bytes(), str(path))
    assert sb.list_local(str(tmp_path / "b")) == []
    with pytest.raises(sb.BackupError, match="no complete backup found"):
        sb.fetch_and_unpack(str(tmp_path / "r.db"), backup_dir=str(tmp_path / "b"))


def test_without_the_zstd_command_a_zstd_backup_is_refused_before_anything_is_written(
    sb, live_db, tmp_path, monkeypatch
):
    earlier = sb.create_backup(str(live_db), str(tmp_path / "b"), compression="gzip")
    before = file_digests(tmp_path / "b")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(
        sb.BackupError, match=r"zstd backups need the zstd command \(Debian: apt-get install zstd\)"
    ):
        sb.create_backup(str(live_db), str(tmp_path / "b"))
    assert file_digests(tmp_path / "b") == before
    sb.unpack_backup(earlier.path, earlier.manifest, str(tmp_path / "r.db"))  # gzip needs no command
