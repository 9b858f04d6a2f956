"""Online backups of a database that a separate process keeps writing to."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from sqlite_helpers import counts, make_db, writer

from tests import games_db


def committed(db: Path, base_moves: int) -> int:
    """The writer's commits in the live database (a consistent prefix, or the check fails)."""
    return games_db.snapshot_commits(db, base_moves)


# WAL is the backend's mode. A rollback-journal database takes the stepped path (and its fallback
# to one step when writers keep restarting it); it is slow under a non-stop writer, so fewer rows.
@pytest.mark.parametrize(("journal_mode", "rows", "rounds"), [("wal", 40_000, 4), ("delete", 4_000, 2)])
def test_every_backup_under_write_load_is_whole_and_holds_every_earlier_commit(
    sb, tmp_path, key, journal_mode, rows, rounds
):
    db = make_db(tmp_path / "tengen.db", rows=rows, journal_mode=journal_mode)
    base_moves = sum(games_db.move_counts(db).values())
    backups = tmp_path / "backups"
    seen = []
    with writer(db, journal_mode) as proc:
        for round_ in range(rounds):
            time.sleep(0.2)
            before = committed(db, base_moves)  # every commit up to here came before the backup began
            result = sb.create_backup(str(db), str(backups), key=key if round_ % 2 else None)
            assert result.manifest["integrity_check"] == "ok"
            restored = tmp_path / f"restored-{round_}.db"
            sb.unpack_backup(result.path, result.manifest, str(restored), key if round_ % 2 else None)
            assert sb.integrity_check(str(restored)) == "ok"
            # one consistent snapshot: every commit whole, none missing before the last one it holds
            held = games_db.snapshot_commits(restored, base_moves)
            assert held >= before, f"commits made before the backup began are missing ({held} < {before})"
            seen.append(held)
        assert proc.poll() is None, "the writer stopped during the backups"
    assert int(proc.stdout_value) > 0
    assert seen == sorted(seen) and seen[-1] > seen[0], "the writer made no progress between backups"
    # the live database is still whole and in its journal mode
    assert sb.integrity_check(str(db)) == "ok"
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == journal_mode
    conn.close()


def test_manifest_describes_the_copy(sb, live_db, tmp_path):
    result = sb.create_backup(str(live_db), str(tmp_path / "b"), compression="lzma")
    m = result.manifest
    assert m["file"].endswith(".db.xz") and m["compression"] == "lzma"
    assert m["sha256"] == sb.sha256_file(result.path)
    assert m["file_size"] == Path(result.path).stat().st_size
    version = games_db.schema_version()  # what the backend's own migrations made
    assert m["migrations"] == {"table": "schema_version", "rows": version, "latest": version}
    assert m["tables"] == counts(live_db)
    assert m["page_count"] * m["page_size"] == m["db_size"]
    assert m["host"] and m["created"].endswith("Z") and m["encryption"] is None
    # the restored file is byte-identical to the copy the manifest describes
    out = tmp_path / "r.db"
    sb.unpack_backup(result.path, m, str(out))
    assert sb.sha256_file(str(out)) == m["db_sha256"]


def test_backup_files_are_private_and_no_temporary_file_remains(sb, live_db, tmp_path, key):
    backups = tmp_path / "b"
    result = sb.create_backup(str(live_db), str(backups), key=key)
    assert sorted(p.name for p in backups.iterdir()) == sorted(
        [".lock", result.manifest["file"], f"{result.manifest['name']}.json"]
    )
    for p in backups.iterdir():
        assert p.stat().st_mode & 0o077 == 0, f"{p} is readable by others"


def test_missing_database_fails_before_any_change(sb, tmp_path):
    with pytest.raises(sb.BackupError, match="does not exist"):
        sb.create_backup(str(tmp_path / "nope.db"), str(tmp_path / "b"))
    assert not (tmp_path / "nope.db").exists() and not (tmp_path / "b").exists()


def test_named_and_latest_pick_verified_backups(sb, live_db, tmp_path):
    first = sb.create_backup(str(live_db), str(tmp_path / "b"))
    second = sb.create_backup(str(live_db), str(tmp_path / "b"))
    found = sb.list_local(str(tmp_path / "b"))
    assert [b.name for b in found] == [first.manifest["name"], second.manifest["name"]]
    assert sb.find_backup(found).name == second.manifest["name"]
    assert sb.find_backup(found, first.manifest["name"]).name == first.manifest["name"]
    with pytest.raises(sb.BackupError, match="no backup named"):
        sb.find_backup(found, "tengen-19990101T000000Z")
