"""Retention by generations over a simulated calendar."""

from __future__ import annotations

import datetime as dt
import json

import pytest

UTC = dt.UTC


def fake(sb, moment: dt.datetime, verified: bool = True):
    name = f"tengen-{moment.strftime('%Y%m%dT%H%M%SZ')}"
    return sb.Backup(
        {
            "name": name,
            "created": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "file": f"{name}.db.gz",
            "integrity_check": "ok" if verified else "failed",
        }
    )


def at(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)


def test_four_months_of_quarter_hourly_backups_keep_exactly_the_generations(sb):
    """Every 15 minutes from 1 January to 30 April 2026 (a Thursday), pruning after each run."""
    retention = sb.Retention(hourly=24, daily=7, weekly=4, monthly=6)
    kept: list = []
    moment = at("2026-01-01 00:00")
    while moment <= at("2026-04-30 23:45"):
        kept.append(fake(sb, moment))
        kept, _ = sb.plan_retention(kept, retention)
        moment += dt.timedelta(minutes=15)
    names = {b.created.strftime("%Y-%m-%d %H:%M") for b in kept}
    hourly = {f"2026-04-30 {h:02d}:45" for h in range(24)}
    daily = {f"2026-04-{d} 23:45" for d in range(24, 31)}
    weekly = {
        "2026-04-30 23:45",
        "2026-04-26 23:45",
        "2026-04-19 23:45",
        "2026-04-12 23:45",
    }  # ISO weeks end Sunday
    monthly = {
        "2026-01-31 23:45",
        "2026-02-28 23:45",
        "2026-03-31 23:45",
        "2026-04-30 23:45",
    }  # only 4 months exist
    assert names == hourly | daily | weekly | monthly
    assert len(kept) == 35


def test_one_shot_plan_equals_pruning_after_every_run(sb):
    retention = sb.Retention(hourly=3, daily=2, weekly=2, monthly=2)
    backups = [fake(sb, at("2026-03-01 00:00") + dt.timedelta(hours=5 * i)) for i in range(200)]
    incremental: list = []
    for b in backups:
        incremental, _ = sb.plan_retention([*incremental, b], retention)
    one_shot, dropped = sb.plan_retention(backups, retention)
    assert [b.name for b in incremental] == [b.name for b in one_shot]
    assert len(one_shot) + len(dropped) == 200


def test_the_newest_verified_backup_survives_whatever_the_counts(sb):
    retention = sb.Retention(hourly=1, daily=1, weekly=1, monthly=1)
    good = fake(sb, at("2026-02-01 10:00"))
    later_bad = [fake(sb, at("2026-03-05 10:00") + dt.timedelta(hours=i), verified=False) for i in range(3)]
    kept, dropped = sb.plan_retention([good, *later_bad], retention)
    assert good.name in {b.name for b in kept}
    assert {b.name for b in dropped} == {later_bad[0].name, later_bad[1].name}


@pytest.mark.parametrize("bad", [0, -1, "3", None])
def test_counts_below_one_are_refused(sb, bad):
    with pytest.raises(sb.BackupError, match="retention daily must be an integer >= 1"):
        sb.Retention(daily=bad)


def test_real_backups_over_a_simulated_month_are_pruned_on_disk(sb, live_db, tmp_path):
    """Backups every 8 hours through June 2026, each run applying retention to the real files."""
    backups = tmp_path / "b"
    retention = sb.Retention(hourly=2, daily=3, weekly=2, monthly=1)
    moment = at("2026-06-01 00:00")
    made = []
    while moment < at("2026-07-01 00:00"):
        made.append(sb.create_backup(str(live_db), str(backups), retention=retention, now=moment))
        moment += dt.timedelta(hours=8)
    on_disk = sb.list_local(str(backups))
    created = sorted(b.created.strftime("%m-%d %H:%M") for b in on_disk)
    # newest two hours that hold a backup, the last of the last 3 days, of the last 2 ISO weeks (Sun 28 June)
    assert created == ["06-28 16:00", "06-29 16:00", "06-30 08:00", "06-30 16:00"]
    # every file on disk belongs to a kept backup: data file and manifest, nothing else
    expected = {f for b in on_disk for f in (b.file, b.manifest_file)}
    assert {p.name for p in backups.iterdir()} == expected
    assert all(
        json.loads((backups / b.manifest_file).read_text())["integrity_check"] == "ok" for b in on_disk
    )
    assert made[-1].manifest["name"] in {b.name for b in on_disk}
