#!/usr/bin/python
"""Make a verified online backup of a live SQLite database."""

from __future__ import annotations

DOCUMENTATION = r"""
module: sqlite_backup
short_description: Make a verified online backup of a live SQLite database, offsite and pruned
version_added: 0.1.0
description:
  - Copies a live SQLite database with SQLite's backup API while its writers keep writing (no service stop,
    no copy of the file under it), runs C(PRAGMA integrity_check) on the copy, compresses it, optionally
    encrypts it (AES-256-GCM), and writes it with a sha256 manifest (sizes, page count, schema version,
    table row counts, time, host). Every file is written atomically, so a crash or a full disk never leaves
    a partial backup looking whole.
  - Optionally uploads the backup to an S3-compatible bucket. When it is encrypted, the bucket gets a minimal
    manifest (name, time, format, sizes, checksum, key id) and the whole one in an encrypted C(NAME.meta.enc).
  - When the upload fails, the local backup is kept
    and the task fails (unless O(fail_on_upload_error=false)) saying so.
  - Optionally prunes old backups by generations (hourly, daily, weekly, monthly), locally and in the bucket,
    never deleting the newest verified backup. Local pruning (and the O(max_local) cap) also runs while
    uploads fail; the bucket is pruned only after a successful upload.
  - The same code runs as C(tengen-backup backup) from the VM's systemd timer (role C(sqlite_backup)).
author: tengen maintainers
extends_documentation_fragment:
  - tengen.ops.sqlite_backup
attributes:
  check_mode:
    support: full
    description: Checks the database and says which backup it would make; writes nothing.
  diff_mode:
    support: none
options:
  db_path:
    description: The live database.
    type: path
    required: true
  backup_dir:
    required: true
  name:
    description: Prefix of the backup names (C(NAME-YYYYmmddTHHMMSSZ)); the database file's stem when unset.
    type: str
  compression:
    description:
      - Compression of the data file. V(zstd) runs the C(zstd) command (Debian package zstd) on every CPU.
      - Backups of every compression stay restorable.
    type: str
    choices: [zstd, gzip, lzma, none]
    default: zstd
  retention:
    description:
      - How many generations to keep; each count is at least 1. No pruning when unset.
      - The newest O(retention.last) backups are kept, and for each period the newest backup of each
        of the last N periods holding a backup.
    type: dict
    suboptions:
      last:
        description: Newest backups to keep, whatever their time.
        type: int
        default: 4
      hourly:
        description: Hours to keep one backup of.
        type: int
        default: 24
      daily:
        description: Days to keep one backup of.
        type: int
        default: 7
      weekly:
        description: ISO weeks to keep one backup of.
        type: int
        default: 4
      monthly:
        description: Months to keep one backup of.
        type: int
        default: 6
  status_file:
    description: JSON status file for monitoring (last attempt, last success, size, location); unset for none.
    type: path
  textfile:
    description: node_exporter textfile collector file (C(.prom)) with the same facts; unset for none.
    type: path
  rpo_seconds:
    description: Allowed age of the newest backup, recorded in the status for alerting.
    type: int
  max_local:
    description:
      - The most local backups to keep, applied after O(retention), whether or not the upload worked, so that
        a bucket that keeps failing never fills the disk. The newest verified backup always stays.
      - Unset for no cap.
    type: int
  min_free_mb:
    description:
      - MiB that must stay free in O(backup_dir) after the backup; the module refuses before writing when
        the database, twice (the copy and its compressed form), would not fit with this reserve.
      - V(0) for no check.
    type: int
    default: 0
  allow_plaintext_offsite:
    description:
      - With O(s3) and no O(encryption_key) the module refuses to run, before writing anything, so that a
        missing key never silently sends the database to a bucket in plaintext.
      - V(true) is the operator's explicit opt-out (for example a bucket that only a private network reaches).
    type: bool
    default: false
  fail_on_upload_error:
    description: Fail the task when the upload fails (the local backup is kept either way).
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Back up the game database, keep it offsite, prune by generations
  tengen.ops.sqlite_backup:
    db_path: /var/lib/tengen/tengen.db
    backup_dir: /var/backups/tengen
    encryption_key: "{{ vault_backup_key }}"
    retention: {last: 4, hourly: 24, daily: 7, weekly: 4, monthly: 6}
    s3:
      bucket: tengen-backups
      prefix: prod
      region: eu-west-1
      sse: AES256
      access_key: "{{ vault_backup_s3_access_key }}"
      secret_key: "{{ vault_backup_s3_secret_key }}"
  register: backup

- name: Back up to a MinIO or Spaces endpoint
  tengen.ops.sqlite_backup:
    db_path: /var/lib/tengen/tengen.db
    backup_dir: /var/backups/tengen
    s3:
      bucket: tengen
      endpoint_url: https://fra1.digitaloceanspaces.com
      region: fra1
      access_key: "{{ vault_spaces_key }}"
      secret_key: "{{ vault_spaces_secret }}"
"""

RETURN = r"""
backup:
  description: The backup made (in check mode, the name it would have).
  returned: always
  type: dict
  contains:
    name:
      description: Backup name.
      type: str
      sample: tengen-20261123T164700Z
    path:
      description: Local data file.
      type: str
      sample: /var/backups/tengen/tengen-20261123T164700Z.db.zst.enc
    manifest:
      description: The manifest (sha256, db_sha256, db_size, page_count, user_version, tables, ...).
      type: dict
    uploaded:
      description: Whether the offsite copy was made.
      type: bool
    s3_uri:
      description: Where the offsite copy goes.
      type: str
      sample: s3://tengen-backups/prod/tengen-20261123T164700Z.db.zst.enc
    upload_error:
      description: Why the upload failed, if it did.
      type: str
    pruned_local:
      description: Backups deleted locally by retention.
      type: list
      elements: str
    pruned_s3:
      description: Backups deleted in the bucket by retention.
      type: list
      elements: str
    skipped_s3:
      description: Objects under the prefix that are not backup manifests of ours, left alone by retention.
      type: list
      elements: str
"""

import os  # noqa: E402
import sqlite3  # noqa: E402
import traceback  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.tengen.ops.plugins.module_utils import sqlite_backup as sb  # noqa: E402


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "db_path": {"type": "path", "required": True},
            "backup_dir": {"type": "path", "required": True},
            "name": {"type": "str"},
            "compression": {"type": "str", "choices": ["zstd", "gzip", "lzma", "none"], "default": "zstd"},
            "encryption_key": {"type": "str", "no_log": True},
            "encryption_keys": {"type": "list", "elements": "str", "no_log": True},
            "retention": {
                "type": "dict",
                "options": {p: {"type": "int", "default": d} for p, d in sb.Retention().__dict__.items()},
            },
            "s3": {"type": "dict", "options": sb.S3_ARGUMENT_SPEC},
            "status_file": {"type": "path"},
            "textfile": {"type": "path"},
            "rpo_seconds": {"type": "int"},
            "fail_on_upload_error": {"type": "bool", "default": True},
            "allow_plaintext_offsite": {"type": "bool", "default": False},
            "max_local": {"type": "int"},
            "min_free_mb": {"type": "int", "default": 0},
        },
        mutually_exclusive=[("encryption_key", "encryption_keys")],
        supports_check_mode=True,
    )
    p = module.params
    keys = p["encryption_keys"] if p["encryption_keys"] else p["encryption_key"]
    try:
        # Validate everything before writing anything.
        retention = sb.Retention(**p["retention"]) if p["retention"] else None
        s3 = sb.s3_from_dict(p["s3"])
        sb.check_offsite_encryption(s3, len(sb.load_keys(keys)) > 0, p["allow_plaintext_offsite"])
        if not os.path.isfile(p["db_path"]):
            module.fail_json(msg=f"db_path: database {p['db_path']} does not exist")
        if module.check_mode:
            conn = sb.open_existing(p["db_path"], readonly=True)
            try:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            finally:
                conn.close()
            prefix = p["name"] or os.path.splitext(os.path.basename(p["db_path"]))[0]
            module.exit_json(
                changed=True, backup={"name": f"{prefix}-{sb.utcnow().strftime('%Y%m%dT%H%M%SZ')}"}
            )
        result = sb.create_backup(
            p["db_path"],
            p["backup_dir"],
            prefix=p["name"],
            compression=p["compression"],
            key=keys,
            s3=s3,
            retention=retention,
            allow_plaintext_offsite=p["allow_plaintext_offsite"],
            max_local=p["max_local"],
            min_free_mb=p["min_free_mb"],
        )
    except (sb.BackupError, sqlite3.Error, OSError) as exc:
        if p["status_file"]:
            sb.write_status(
                p["status_file"],
                ok=False,
                error=str(exc),
                rpo_seconds=p["rpo_seconds"],
                textfile_path=p["textfile"],
            )
        module.fail_json(msg=str(exc), exception=traceback.format_exc())
    if p["status_file"]:
        sb.write_status(
            p["status_file"],
            ok=True,
            result=result,
            rpo_seconds=p["rpo_seconds"],
            textfile_path=p["textfile"],
        )
    for name in result.skipped_s3:
        module.warn(f"skipped {name} in the bucket: not a backup manifest of ours")
    if result.upload_error and p["fail_on_upload_error"]:
        module.fail_json(
            msg=f"the backup {result.path} was made and kept locally, but {result.upload_error}",
            changed=True,
            backup=result.as_dict(),
        )
    module.exit_json(changed=True, backup=result.as_dict())


if __name__ == "__main__":
    main()
