"""The role refuses bad input before any change, naming the variable (run on this machine, locally)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from sqlite_helpers import REPO

CASES = [
    (
        {"sqlite_backup_schedule": "every 15 minutes"},
        "sqlite_backup_schedule 'every 15 minutes' is not a systemd",
    ),
    ({"sqlite_backup_keep_daily": 0}, "sqlite_backup_keep_daily must be at least 1"),
    ({"sqlite_backup_keep_monthly": -2}, "sqlite_backup_keep_monthly must be at least 1"),
    ({"sqlite_backup_restore_keep_replaced": 0}, "sqlite_backup_restore_keep_replaced must be at least 1"),
    ({"sqlite_backup_restore_timeout": 0}, "sqlite_backup_restore_timeout must be at least 1"),
    (
        {"sqlite_backup_s3_bucket": "tengen-backups"},
        "sqlite_backup_s3_bucket is set, so sqlite_backup_s3_access_key",
    ),
    (
        {
            "sqlite_backup_s3_bucket": "tengen-backups",
            "sqlite_backup_s3_access_key": "AKIA",
            "sqlite_backup_s3_secret_key": "secret",
        },
        "sqlite_backup_s3_bucket is set but no encryption key is",
    ),
    (
        {"sqlite_backup_db_path": "/nonexistent/tengen.db"},
        "sqlite_backup_db_path: /nonexistent/tengen.db does not",
    ),
    ({"sqlite_backup_compression": "zip"}, "sqlite_backup_compression"),
    (
        {"sqlite_backup_encryption_key": "too-short"},
        "sqlite_backup_encryption_key: each key must be 32 random",
    ),
    (
        {"sqlite_backup_encryption_keys": ["3q2+7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "too-short"]},
        "sqlite_backup_encryption_keys: each key must be 32 random",
    ),
]


@pytest.mark.parametrize(
    ("bad", "message"), CASES, ids=[f"{i}-{next(iter(c[0]))}" for i, c in enumerate(CASES)]
)
def test_bad_input_fails_before_any_change(live_db, tmp_path, bad, message):
    variables = {
        "sqlite_backup_db_path": str(live_db),
        "sqlite_backup_dir": str(tmp_path / "backups"),
        "sqlite_backup_status_file": str(tmp_path / "status" / "status.json"),
        **bad,
    }
    (tmp_path / "vars.json").write_text(json.dumps(variables))
    (tmp_path / "play.yml").write_text(
        "- hosts: localhost\n  connection: local\n  gather_facts: false\n  roles: [{role: sqlite_backup}]\n"
    )
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(REPO / "roles"),
    }
    run = subprocess.run(
        [
            str(os.path.join(os.path.dirname(sys.executable), "ansible-playbook")),
            "-i",
            "localhost,",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            "-e",
            f"@{tmp_path / 'vars.json'}",
            str(tmp_path / "play.yml"),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = " ".join(run.stdout.split())
    assert run.returncode != 0
    assert message in out, out[-2000:]
    assert "changed=0" in out  # nothing was changed before the refusal
    assert not (tmp_path / "backups").exists() and not (tmp_path / "status").exists()
