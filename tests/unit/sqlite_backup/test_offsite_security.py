"""Offsite copies are encrypted unless the operator opted out in writing."""

from __future__ import annotations

import pytest

from tests.conftest import free_port
from tests.module_runner import run_module as run


def unreachable(sb):
    # Nothing listens there: a refusal must come before any attempt to reach it.
    return sb.S3Target(
        bucket="tengen", endpoint_url=f"http://127.0.0.1:{free_port()}", region="eu-west-1", connect_timeout=1
    )


def test_the_library_refuses_a_bucket_without_a_key_before_writing_anything(sb, live_db, tmp_path):
    with pytest.raises(sb.BackupError, match="plaintext"):
        sb.create_backup(str(live_db), str(tmp_path / "b"), s3=unreachable(sb))
    assert not (tmp_path / "b").exists()


def test_the_explicit_opt_out_makes_a_plaintext_backup(sb, live_db, tmp_path):
    result = sb.create_backup(
        str(live_db), str(tmp_path / "b"), s3=unreachable(sb), allow_plaintext_offsite=True
    )
    assert result.manifest["encryption"] is None and result.upload_error


def test_the_timer_command_refuses_a_bucket_without_a_key(sb, live_db, tmp_path):
    env = {
        "TENGEN_BACKUP_DB": str(live_db),
        "TENGEN_BACKUP_DIR": str(tmp_path / "b"),
        "TENGEN_BACKUP_STATUS_FILE": str(tmp_path / "status.json"),
        "TENGEN_BACKUP_S3_BUCKET": "tengen",
        "TENGEN_BACKUP_S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
    }
    assert sb.cli_main(["backup"], env) == 1
    assert sb.list_local(str(tmp_path / "b")) == []
    assert "plaintext" in (tmp_path / "status.json").read_text()


def test_the_module_refuses_a_bucket_without_a_key_in_check_mode_too(live_db, tmp_path):
    args = {
        "db_path": str(live_db),
        "backup_dir": str(tmp_path / "b"),
        "s3": {"bucket": "tengen", "endpoint_url": f"http://127.0.0.1:{free_port()}"},
    }
    for check in (True, False):
        result, _ = run("tengen.ops.sqlite_backup", args, check=check)
        assert result["failed"] is True and "plaintext" in result["msg"], result
        assert not (tmp_path / "b").exists()
