"""A failing bucket never fills the disk; a backup or a restore that would is refused before it writes."""

from __future__ import annotations

import datetime as dt
import shutil

import pytest
from sqlite_helpers import counts

from tests import games_db
from tests.unit.sqlite_backup.test_retention import at, fake


@pytest.mark.aws
def test_a_day_of_failing_uploads_keeps_the_local_count_bounded_and_the_newest_verified(
    sb, live_db, tmp_path, aws_env, key
):
    """96 quarter-hourly runs (simulated time) against a bucket that does not exist: every upload fails."""
    backups = tmp_path / "b"
    s3 = sb.S3Target(bucket="tengen-no-such-bucket", endpoint_url=aws_env, region="eu-west-1")
    retention = sb.Retention()  # the role's defaults: last 4, hourly 24, daily 7, weekly 4, monthly 6
    cap = 20  # below what the generations keep in a day, so the cap shows
    moment = at("2026-06-01 00:00")
    for run in range(96):
        result = sb.create_backup(
            str(live_db), str(backups), key=key, s3=s3, retention=retention, now=moment, max_local=cap
        )
        assert not result.uploaded and "failed" in result.upload_error
        on_disk = sb.list_local(str(backups))
        assert len(on_disk) <= cap, f"run {run}: {len(on_disk)} local backups"
        assert on_disk[-1].name == result.manifest["name"] and on_disk[-1].verified
        moment += dt.timedelta(minutes=15)
    # data files and manifests of the kept backups, nothing else is left on the disk
    expected = {f for b in on_disk for f in (b.file, b.manifest_file)} | {".lock"}
    assert {p.name for p in backups.iterdir()} == expected
    assert len(on_disk) == cap
    # without the cap, the generations alone bound the count: the last 4 and one per hour
    uncapped = tmp_path / "u"
    moment = at("2026-06-01 00:00")
    for _ in range(96):
        sb.create_backup(str(live_db), str(uncapped), key=key, s3=s3, retention=retention, now=moment)
        moment += dt.timedelta(minutes=15)
    assert len(sb.list_local(str(uncapped))) == 27  # 24 hours + the 3 other quarters of the last hour


def test_the_cap_never_drops_the_newest_verified_backup(sb):
    good = fake(sb, at("2026-02-01 10:00"))
    bad = [fake(sb, at("2026-02-01 11:00") + dt.timedelta(minutes=15 * i), verified=False) for i in range(6)]
    kept, dropped = sb.cap_count([good, *bad], 3)
    assert good.name in {b.name for b in kept}
    assert [b.name for b in kept] == [good.name] + [b.name for b in bad[-3:]]
    assert len(dropped) == 3


def test_a_backup_that_would_eat_the_reserve_is_refused_before_it_writes(sb, tmp_path, small_disk):
    # 1800 games of 20 moves, about 0.8 MiB: it fits, but not with a 5 MiB reserve
    db = games_db.make_db(tmp_path / "tengen.db", games=1800, moves=36_000)
    backups = small_disk / "b"
    with pytest.raises(sb.BackupError, match=r"not enough free space .* 5 MiB must stay free"):
        sb.create_backup(str(db), str(backups), min_free_mb=5)
    assert [p.name for p in backups.iterdir() if p.name != ".lock"] == []
    made = sb.create_backup(str(db), str(backups), min_free_mb=1)
    assert made.manifest["integrity_check"] == "ok"


def test_a_restore_that_would_eat_the_reserve_is_refused_before_it_writes(sb, tmp_path, small_disk, key):
    db = games_db.make_db(
        tmp_path / "tengen.db", games=5000, moves=100_000
    )  # about 2 MiB, 0.7 MiB compressed
    made = sb.create_backup(str(db), str(tmp_path / "b"), key=key)
    dest = small_disk / "restored.db"
    with pytest.raises(sb.BackupError, match=r"not enough free space .* restoring"):
        sb.fetch_and_unpack(str(dest), backup_dir=str(tmp_path / "b"), key=key, min_free_mb=5)
    assert list(small_disk.iterdir()) == []
    sb.fetch_and_unpack(str(dest), backup_dir=str(tmp_path / "b"), key=key, min_free_mb=1)
    assert counts(dest) == made.manifest["tables"]
    assert shutil.disk_usage(small_disk).free > 1024 * 1024
