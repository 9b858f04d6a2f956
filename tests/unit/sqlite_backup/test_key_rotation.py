"""Key rotation: a keyring, newest first; backups made under an earlier key stay restorable."""

from __future__ import annotations

import base64
import os

import pytest
from sqlite_helpers import counts

from tests.module_runner import run_module as run


def new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def test_a_backup_under_key_a_restores_after_rotating_to_b_then_a(sb, live_db, tmp_path):
    a, b = new_key(), new_key()
    old = sb.create_backup(str(live_db), str(tmp_path / "b"), key=a)
    new = sb.create_backup(str(live_db), str(tmp_path / "b"), key=[b, a])
    id_a, id_b = sb.key_id(sb.load_key(a)), sb.key_id(sb.load_key(b))
    assert old.manifest["encryption"]["key_id"] == id_a
    assert new.manifest["encryption"]["key_id"] == id_b  # the newest key encrypts
    for made in (old, new):
        sb.unpack_backup(made.path, made.manifest, str(tmp_path / "r.db"), [b, a])
        assert counts(tmp_path / "r.db") == counts(live_db)
        (tmp_path / "r.db").unlink()
    with pytest.raises(sb.VerificationError, match=f"key id {id_a}, which is not in the keyring") as refused:
        sb.unpack_backup(old.path, old.manifest, str(tmp_path / "r.db"), [b])
    assert id_b in str(refused.value) and not (tmp_path / "r.db").exists()


def test_the_timer_command_takes_a_keyring_newest_first(sb, live_db, tmp_path):
    a, b = new_key(), new_key()
    env = {"TENGEN_BACKUP_DB": str(live_db), "TENGEN_BACKUP_DIR": str(tmp_path / "b")}
    env["TENGEN_BACKUP_STATUS_FILE"] = str(tmp_path / "status.json")
    assert sb.cli_main(["backup"], {**env, "TENGEN_BACKUP_ENCRYPTION_KEY": a}) == 0  # the earlier form
    assert sb.cli_main(["verify"], {**env, "TENGEN_BACKUP_ENCRYPTION_KEYS": f"{b} {a}"}) == 0
    assert sb.cli_main(["verify"], {**env, "TENGEN_BACKUP_ENCRYPTION_KEYS": b}) == 1


def test_the_modules_restore_a_backup_of_an_earlier_key_through_the_keyring(live_db, tmp_path):
    a, b = new_key(), new_key()
    base = {"db_path": str(live_db), "backup_dir": str(tmp_path / "b")}
    made, _ = run("tengen.ops.sqlite_backup", {**base, "encryption_key": a})
    assert made["backup"]["manifest"]["encryption"]["key_id"]
    drill = {**base, "action": "drill", "dest": str(tmp_path / "drill.db")}
    ok, output = run("tengen.ops.sqlite_restore", {**drill, "encryption_keys": [b, a]}, verbosity=3)
    assert ok.get("failed") is not True, ok
    assert ok["comparison"]["tables"]["games"]["difference"] == 0
    assert a not in output and b not in output, "a key leaked into the output"
    refused, _ = run("tengen.ops.sqlite_restore", {**drill, "encryption_keys": [b]})
    assert refused["failed"] is True
    assert made["backup"]["manifest"]["encryption"]["key_id"] in refused["msg"], refused["msg"]
