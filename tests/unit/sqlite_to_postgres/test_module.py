"""tengen.ops.sqlite_to_postgres as Ansible runs it: check mode, idempotence, refusal, bad input, no_log."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
from games_data import backup

from tests.conftest import REPO
from tests.games_db import STORE
from tests.module_runner import run_module
from tests.service_servers import APP_DIR

MODULE = "tengen.ops.sqlite_to_postgres"
LATEST = len(STORE.MIGRATIONS)  # the backend's schema version


def with_password(url: str, password: str = "pw-Secr3t-x9") -> str:
    """The cluster trusts local connections, so a password in the URL is accepted and ignored."""
    return url.replace("postgresql://tengen@", f"postgresql://tengen:{password}@")


def args(games: dict, url: str, **extra) -> dict:
    return {
        "backup_dir": str(games["backup_dir"]),
        "database_url": url,
        "backend_path": str(APP_DIR),
        **extra,
    }


def tables_in(url: str) -> list[str]:
    with psycopg.connect(url) as pg:
        return [r[0] for r in pg.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]


def test_check_mode_shows_the_plan_and_changes_nothing(games, target):
    url = with_password(target)
    result, output = run_module(MODULE, args(games, url), check=True, verbosity=3)
    assert result["changed"] is True, result
    plan = result["plan"]
    assert plan["tables"] == {"games": 9, "schema_version": LATEST} and plan["target_rows"] == {}
    assert plan["target"].startswith("postgresql://tengen:********@127.0.0.1:")
    assert f"would copy {9 + LATEST} rows" in result["msg"]
    assert "pw-Secr3t-x9" not in output
    assert tables_in(target) == []


def test_migrate_then_unchanged_then_refused_then_replaced(games, target, tmp_path):
    url = with_password(target)
    progress = tmp_path / "progress.log"
    first, output = run_module(MODULE, args(games, url, progress_file=str(progress)), verbosity=3)
    assert first["changed"] is True, first.get("msg")
    assert first["verification"]["mismatched"] == [] and first["rows"] == 9
    assert first["tables"]["games"]["rows_per_second"] > 0 and first["rows_per_second"] > 0
    assert first["backup"]["name"] == games["backup"]
    lines = progress.read_text().splitlines()
    assert any("games: 9/9 rows (100%)" in line and "rows/s" in line for line in lines), lines
    assert any("done: 9 rows" in line for line in lines)
    assert "pw-Secr3t-x9" not in output and "pw-Secr3t-x9" not in progress.read_text()

    second, _ = run_module(MODULE, args(games, url))
    assert second.get("failed") is not True and second["changed"] is False, second.get("msg")
    assert "holds exactly the backup already" in second["msg"]

    verified, _ = run_module(MODULE, args(games, url, action="verify"))
    assert verified["changed"] is False and "failed" not in verified

    with psycopg.connect(target) as pg:
        pg.execute("UPDATE games SET komi = 0.5 WHERE id = 'ai-black'")
    refused, _ = run_module(MODULE, args(games, url))
    assert refused["failed"] is True and refused["changed"] is False
    assert "is not empty (games: 9 rows)" in refused["msg"] and "replace: true" in refused["msg"]
    assert "table games: same row count (9) but the checksums differ" in refused["msg"]
    assert "pw-Secr3t-x9" not in refused["msg"]
    failed_verify, _ = run_module(MODULE, args(games, url, action="verify"))
    assert failed_verify["failed"] is True and "verification failed: table games" in failed_verify["msg"]

    replaced, _ = run_module(MODULE, args(games, url, replace=True))
    assert replaced["changed"] is True and replaced["verification"]["mismatched"] == []
    with psycopg.connect(target) as pg:
        assert pg.execute("SELECT komi FROM games WHERE id = 'ai-black'").fetchone() == (0.0,)
    again, _ = run_module(MODULE, args(games, url, replace=True))
    assert again["changed"] is False


def test_the_gzip_backups_of_format_1_migrate_as_zstd_ones_do(target, tmp_path):
    """The cutover reads whatever the VM holds: backups made before zstd, encrypted ones included."""
    old = tmp_path / "format-1"
    shutil.copytree(REPO / "tests" / "unit" / "data" / "backup-format-1", old)
    url = with_password(target)
    key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="  # the test key of those backups (their README)
    common = {"backup_dir": str(old), "database_url": url, "backend_path": str(APP_DIR)}
    done, _ = run_module(MODULE, {**common, "backup": "tengen-20261201T120000Z"})
    assert done.get("failed") is not True, done.get("msg")
    assert done["backup"]["source"].endswith(".db.gz")
    assert done["rows"] == 20 and done["verification"]["mismatched"] == []
    # the encrypted one holds the same games: verified against what the plain one moved
    same, _ = run_module(
        MODULE,
        {**common, "backup": "tengen-20261201T121500Z", "encryption_keys": [key], "action": "verify"},
    )
    assert same.get("failed") is not True and same["changed"] is False, same.get("msg")
    assert same["backup"]["source"].endswith(".db.gz.enc") and same["verification"]["mismatched"] == []
    with psycopg.connect(target) as pg:
        assert pg.execute("SELECT count(*) FROM games").fetchone() == (20,)


def test_bad_input_fails_with_a_clear_message_before_any_change(games, target, postgres, tmp_path):
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    for item in games["backup_dir"].iterdir():
        (corrupt / item.name).write_bytes(item.read_bytes())
    data = next(p for p in corrupt.iterdir() if p.name.endswith(".db.zst"))
    data.write_bytes(data.read_bytes()[:-20])

    future = tmp_path / "future-backups"
    future.mkdir()
    import sqlite3

    db = tmp_path / "future.db"
    with sqlite3.connect(games["db"]) as src, sqlite3.connect(db) as dest:
        src.backup(dest)
        dest.execute(f"INSERT INTO schema_version VALUES ({LATEST + 1})")
    backup(db, future)

    url = with_password(target)
    port = int(target.rsplit(":", 1)[1].split("/")[0])
    dead = with_password(target).replace(f":{port}/", ":9/")
    read_only = url + "?options=-c%20default_transaction_read_only%3Don"
    for extra, words in [
        ({"database_url": dead}, "cannot connect to postgresql://tengen:********@127.0.0.1:9/"),
        ({"database_url": read_only}, "the target is read-only (transaction_read_only is on)"),
        ({"backup_dir": str(corrupt)}, "sha256 does not match the manifest"),
        (
            {"backup_dir": str(future)},
            f"the backup's schema version {LATEST + 1} is newer than the backend's migrations (1..{LATEST})",
        ),
        ({"database_url": "mysql://u:pw-Secr3t-x9@h/db"}, "database_url must be a postgresql:// URL"),
        ({"backend_path": str(tmp_path)}, f"backend_path: {tmp_path} holds no tengen_app/store.py"),
        ({"batch_rows": 0}, "batch_rows must be at least 1"),
    ]:
        result, output = run_module(MODULE, {**args(games, url), **extra}, verbosity=3)
        assert result["failed"] is True and result["changed"] is False, result
        assert words in result["msg"], result["msg"]
        assert "pw-Secr3t-x9" not in output
        assert tables_in(target) == [], extra


def test_the_documentation_parses_and_names_every_option():
    doc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-doc"), "--json", MODULE],
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")},
        capture_output=True,
        text=True,
        check=True,
    )
    options = json.loads(doc.stdout)[MODULE]["doc"]["options"]
    assert set(options) == {
        "database_url", "direction", "dest", "action", "backup", "source", "backup_dir", "s3",
        "encryption_key", "encryption_keys", "backend_path", "replace", "batch_rows", "work_dir",
        "progress_file",
    }  # fmt: skip
    assert options["database_url"]["required"] is True
