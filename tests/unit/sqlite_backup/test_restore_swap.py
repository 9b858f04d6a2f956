"""Restores on the VM: durable renames, a swap that a crash at any step leaves whole, the pruning of
replaced databases, the backups' lock, and the recovery of a restore that stopped half-way."""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlite_helpers import REPO, counts, crashed_backend

# A child that swaps, but dies (os._exit, as a kill would) right after its Nth durable step.
CRASH = r"""
import os, sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.tengen.ops.plugins.module_utils import sqlite_backup as sb
limit, steps = int(sys.argv[2]), [0]
real = sb.fsync_dir
def fsync_then_maybe_die(path):
    real(path)
    steps[0] += 1
    if steps[0] >= limit:
        os._exit(9)
sb.fsync_dir = fsync_then_maybe_die
sb.swap_database(sys.argv[3], sys.argv[4], ".pre-restore-T")
os._exit(0)
"""


def _staged(sb, live_db: Path, tmp_path: Path) -> Path:
    backup = sb.create_backup(str(live_db), str(tmp_path / "b"))
    staged = live_db.parent / ".restore.db"
    sb.unpack_backup(backup.path, backup.manifest, str(staged))
    return staged


def test_every_rename_of_a_swap_is_followed_by_an_fsync_of_its_directory(sb, live_db, tmp_path, monkeypatch):
    staged = _staged(sb, live_db, tmp_path)
    crashed_backend(live_db, 3)
    events: list[str] = []
    real_replace, real_link, real_fsync = os.replace, os.link, sb.fsync_dir
    monkeypatch.setattr(sb.os, "replace", lambda a, b: (events.append("rename"), real_replace(a, b))[1])
    monkeypatch.setattr(sb.os, "link", lambda a, b: (events.append("link"), real_link(a, b))[1])
    monkeypatch.setattr(sb, "fsync_dir", lambda d: (events.append(f"fsync {d}"), real_fsync(d))[1])
    sb.swap_database(str(staged), str(live_db), ".pre-restore-T")
    directory = f"fsync {live_db.parent}"
    changes = [i for i, e in enumerate(events) if e in ("rename", "link")]
    assert len(changes) >= 2, events  # the kept link and the staged file's rename at least
    for i in changes:
        assert events[i + 1] == directory, events


def test_a_crash_at_any_step_of_the_swap_leaves_the_whole_old_or_the_whole_new_database(
    sb, live_db, tmp_path
):
    staged = _staged(sb, live_db, tmp_path)
    new_games = counts(staged)["games"]
    crashed_backend(live_db, 7)
    old_games = new_games + 7
    pristine = tmp_path / "pristine"
    pristine.mkdir()
    for name in os.listdir(live_db.parent):
        (pristine / name).write_bytes((live_db.parent / name).read_bytes())
    seen = set()
    for limit in range(1, 10):
        for name in os.listdir(live_db.parent):  # back to before the swap, the old WAL beside the old DB
            os.unlink(live_db.parent / name)
        for name in os.listdir(pristine):
            (live_db.parent / name).write_bytes((pristine / name).read_bytes())
        run = subprocess.run(
            [sys.executable, "-c", CRASH, str(REPO / "collections"), str(limit), str(staged), str(live_db)],
            check=False,
        )
        games = counts(live_db)["games"]
        assert sb.integrity_check(str(live_db)) == "ok"
        assert games in (old_games, new_games), (limit, games)
        seen.add(games)
        if run.returncode == 0:
            break
    assert run.returncode == 0 and seen == {old_games, new_games}  # crashes before and after the switch


def test_prune_keeps_the_newest_replaced_databases_by_the_time_in_their_name(sb, tmp_path):
    db = tmp_path / "tengen.db"
    db.write_bytes(b"live")
    stamps = ["20261101T000000Z", "20261203T120000Z", "20261102T000000Z", "20261207T080000Z"]
    for stamp in stamps:
        kept = tmp_path / f"tengen.db.pre-restore-{stamp}"
        kept.write_bytes(b"old")
        (tmp_path / f"tengen.db.pre-restore-{stamp}-wal").write_bytes(b"wal")
    (tmp_path / "other.db.pre-restore-20200101T000000Z").write_bytes(b"not ours")
    removed = sb.prune_replaced(str(db), 2)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == [
        "other.db.pre-restore-20200101T000000Z",
        "tengen.db",
        "tengen.db.pre-restore-20261203T120000Z",
        "tengen.db.pre-restore-20261203T120000Z-wal",
        "tengen.db.pre-restore-20261207T080000Z",
        "tengen.db.pre-restore-20261207T080000Z-wal",
    ]
    assert len(removed) == 4
    assert sb.prune_replaced(str(db), 2) == []
    with pytest.raises(sb.BackupError, match="at least 1"):
        sb.prune_replaced(str(db), 0)


def test_a_restore_on_the_vm_swaps_prunes_and_leaves_no_pending_state(sb, live_db, tmp_path):
    for stamp in ("20260101T000000Z", "20260102T000000Z"):
        Path(f"{live_db}.pre-restore-{stamp}").write_bytes(b"old")
    staged = _staged(sb, live_db, tmp_path)
    crashed_backend(live_db, 4)
    state = tmp_path / "state"
    swapped = sb.restore_on_vm(
        str(staged),
        str(live_db),
        backup_dir=str(tmp_path / "b"),
        state_dir=str(state),
        keep_suffix=".pre-restore-20261207T000000Z",
        backend=sb.BackendControl("none"),
        timer=None,
        keep_replaced=2,
    )
    assert counts(live_db)["games"] == 50 and not staged.exists()
    assert swapped["kept"][0] == f"{live_db}.pre-restore-20261207T000000Z"
    assert swapped["pruned"] == [f"{live_db}.pre-restore-20260101T000000Z"]
    assert not (state / sb.RESTORE_STATE).exists()


def test_a_restore_waits_for_a_running_backup_and_gives_up_before_stopping_anything(sb, live_db, tmp_path):
    staged = _staged(sb, live_db, tmp_path)
    before = sb.sha256_file(str(live_db))
    fd = os.open(tmp_path / "b" / ".lock", os.O_CREAT | os.O_RDWR, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a backup in progress
    try:
        with pytest.raises(sb.BackupError, match="nothing was stopped"):
            sb.restore_on_vm(
                str(staged),
                str(live_db),
                backup_dir=str(tmp_path / "b"),
                state_dir=str(tmp_path / "state"),
                keep_suffix=".pre-restore-T",
                backend=sb.BackendControl("none"),
                timer=None,
                lock_wait=1,
            )
    finally:
        os.close(fd)
    assert sb.sha256_file(str(live_db)) == before and staged.exists()
    assert not (tmp_path / "state" / sb.RESTORE_STATE).exists()


def test_recovery_after_a_restore_cut_short_removes_its_staged_copy_and_its_state(sb, tmp_path):
    staged = tmp_path / ".tengen-restore-T.db"
    staged.write_bytes(b"staged")
    state = {"backend": {"kind": "none"}, "timer": None, "timer_was_active": False, "staged": str(staged)}
    (tmp_path / sb.RESTORE_STATE).write_text(json.dumps(state))
    assert sb.restore_recover(str(tmp_path))["staged"] == str(staged)
    assert not staged.exists() and not (tmp_path / sb.RESTORE_STATE).exists()
    assert sb.restore_recover(str(tmp_path)) is None  # nothing pending: nothing done


def test_the_restore_unit_is_bounded_and_recovers_however_it_ends(sb):
    argv = sb.restore_unit_argv(
        staged="/var/lib/tengen/.tengen-restore-T.db",
        keep_suffix=".pre-restore-T",
        backend={"kind": "compose", "compose_dir": "/opt/tengen", "services": ["backend-blue"]},
        timer="tengen-backup.timer",
        keep_replaced=2,
        timeout=600,
        env_file="/etc/tengen-backup/backup.env",
    )
    assert argv[0] == "systemd-run" and "--wait" in argv
    assert "--property=RuntimeMaxSec=600" in argv
    assert "--property=ExecStopPost=/usr/local/bin/tengen-backup restore-recover" in argv
    command = argv[argv.index("/usr/local/bin/tengen-backup") :]
    assert command[1] == "restore-swap" and "--service=backend-blue" in command
    with pytest.raises(sb.BackupError, match="at least 1 second"):
        sb.restore_unit_argv(
            staged="s", keep_suffix="k", backend={}, timer=None, keep_replaced=1, timeout=0, env_file="e"
        )
    with pytest.raises(sb.BackupError, match="project directory"):
        sb.BackendControl("compose")


def test_a_swap_refuses_a_database_still_in_use_and_changes_nothing(sb, live_db, tmp_path):
    staged = _staged(sb, live_db, tmp_path)
    crashed_backend(live_db, 2)
    backend = sqlite3.connect(live_db)  # a backend that was not stopped, in the middle of a read
    backend.execute("BEGIN")
    backend.execute("SELECT count(*) FROM games").fetchone()
    try:
        before = sorted(os.listdir(live_db.parent))
        with pytest.raises(sb.BackupError, match="still in use"):
            sb.swap_database(str(staged), str(live_db), ".pre-restore-T")
        assert sorted(os.listdir(live_db.parent)) == before and staged.exists()
    finally:
        backend.close()
