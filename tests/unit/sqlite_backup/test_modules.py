"""The modules as Ansible runs them: check mode, validation before change, no_log, refusal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlite_helpers import counts, file_digests

from tests import games_db
from tests.module_runner import run_module as run


def test_check_mode_names_the_backup_and_writes_nothing(live_db, tmp_path):
    result, _ = run(
        "tengen.ops.sqlite_backup", {"db_path": str(live_db), "backup_dir": str(tmp_path / "b")}, check=True
    )
    assert result["changed"] is True and result["backup"]["name"].startswith("tengen-")
    assert not (tmp_path / "b").exists()


def test_a_backup_then_a_drill_then_a_restore(live_db, tmp_path, key):
    backups = tmp_path / "b"
    made, output = run(
        "tengen.ops.sqlite_backup",
        {
            "db_path": str(live_db),
            "backup_dir": str(backups),
            "encryption_key": key,
            "retention": {"daily": 3},
            "status_file": str(tmp_path / "status.json"),
        },
        verbosity=3,
    )
    assert made["changed"] is True and made["backup"]["manifest"]["integrity_check"] == "ok"
    assert key not in output, "the encryption key leaked into the output"
    assert json.loads((tmp_path / "status.json").read_text())["name"] == made["backup"]["name"]

    drill, _ = run(
        "tengen.ops.sqlite_restore",
        {
            "action": "drill",
            "backup_dir": str(backups),
            "encryption_key": key,
            "db_path": str(live_db),
            "dest": str(tmp_path / "drill.db"),
        },
    )
    assert drill["changed"] is False and not (tmp_path / "drill.db").exists()
    assert drill["comparison"]["tables"]["games"] == {"restored": 50, "live": 50, "difference": 0}

    staged = live_db.parent / ".restore.db"
    stage, _ = run(
        "tengen.ops.sqlite_restore",
        {"action": "stage", "backup_dir": str(backups), "encryption_key": key, "dest": str(staged)},
    )
    assert stage["backup"]["name"] == made["backup"]["name"] and staged.is_file()
    swap, _ = run(
        "tengen.ops.sqlite_restore",
        {"action": "swap", "dest": str(staged), "db_path": str(live_db), "keep_suffix": ".pre-restore-1"},
    )
    assert swap.get("changed") is True, swap
    assert Path(f"{live_db}.pre-restore-1").is_file()
    again, _ = run(
        "tengen.ops.sqlite_restore",
        {"action": "swap", "dest": str(staged), "db_path": str(live_db), "keep_suffix": ".pre-restore-1"},
    )
    assert again["failed"] is True and "exists already" in again["msg"]
    assert counts(live_db) == made["backup"]["manifest"]["tables"]


def test_bad_input_fails_naming_the_variable_before_any_change(live_db, tmp_path):
    for args, words in [
        ({"retention": {"hourly": 0}}, "retention hourly must be an integer >= 1"),
        ({"db_path": str(tmp_path / "missing.db")}, "db_path: database"),
        ({"compression": "zip"}, "compression"),
        ({"s3": {"bucket": "b", "access_key": "only-half"}}, "access_key and secret_key go together"),
    ]:
        base = {"db_path": str(live_db), "backup_dir": str(tmp_path / "b")}
        result, _ = run("tengen.ops.sqlite_backup", {**base, **args})
        assert result["failed"] is True and words in result["msg"], result["msg"]
        assert not (tmp_path / "b").exists()


def test_restore_refuses_a_corrupted_backup_and_leaves_everything_alone(live_db, tmp_path):
    backups = tmp_path / "b"
    made, _ = run("tengen.ops.sqlite_backup", {"db_path": str(live_db), "backup_dir": str(backups)})
    data = Path(made["backup"]["path"])
    data.write_bytes(data.read_bytes()[:-10])
    before = file_digests(live_db.parent)
    result, _ = run(
        "tengen.ops.sqlite_restore",
        {"action": "stage", "backup_dir": str(backups), "dest": str(live_db.parent / ".restore.db")},
    )
    assert result["failed"] is True and "sha256 does not match the manifest" in result["msg"], result["msg"]
    assert file_digests(live_db.parent) == before


def test_a_move_lost_inside_a_game_fails_the_drill_though_every_row_count_agrees(live_db, tmp_path):
    made, _ = run("tengen.ops.sqlite_backup", {"db_path": str(live_db), "backup_dir": str(tmp_path / "b")})
    manifest = made["backup"]["manifest"]
    assert manifest["migrations"]["table"] == "schema_version"  # the backend's own record of its schema
    assert manifest["game_moves"]["games"] == 50 and manifest["game_moves"]["moves"] == 1000
    drill_args = {"action": "drill", "backup_dir": str(tmp_path / "b"), "db_path": str(live_db)}

    ok, _ = run("tengen.ops.sqlite_restore", {**drill_args, "dest": str(tmp_path / "d1.db")})
    assert ok.get("failed") is not True, ok
    assert ok["comparison"]["moves"]["games_with_lost_moves"] == 0
    assert ok["comparison"]["moves"]["restored"] == {"games": 50, "moves": 1000}

    games_db.drop_last_move(live_db, "g000007")
    lost, _ = run("tengen.ops.sqlite_restore", {**drill_args, "dest": str(tmp_path / "d2.db")})
    assert all(c["difference"] == 0 for c in lost["comparison"]["tables"].values())  # rows cannot see it
    assert lost["failed"] is True and "1 games hold fewer moves live" in lost["msg"]
    assert lost["comparison"]["moves"]["lost"] == {"g000007": {"restored": 20, "live": 19}}
    assert not (tmp_path / "d2.db").exists()


def test_a_backup_whose_moves_differ_from_its_manifest_is_refused(sb, live_db, tmp_path):
    made = sb.create_backup(str(live_db), str(tmp_path / "b"), compression="none")
    manifest = dict(made.manifest, game_moves=dict(made.manifest["game_moves"], moves=999))
    with pytest.raises(sb.VerificationError, match="move counts differ"):
        sb.unpack_backup(made.path, manifest, str(tmp_path / "r.db"))
    assert not (tmp_path / "r.db").exists()
