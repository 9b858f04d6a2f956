#!/usr/bin/python
"""Move the backend's data from a verified SQLite backup into PostgreSQL, and prove the copy."""

from __future__ import annotations

DOCUMENTATION = r"""
module: sqlite_to_postgres
short_description: Copy a verified SQLite backup of the backend into PostgreSQL and verify every table
version_added: 0.1.0
description:
  - Takes the latest verified or a named backup made by M(tengen.ops.sqlite_backup) (local directory or
    S3-compatible bucket), verifies it as M(tengen.ops.sqlite_restore) does (file sha256, key fingerprint,
    decryption, decompression, database sha256, C(PRAGMA integrity_check), row counts against the manifest)
    into a scratch copy, and loads it into the PostgreSQL database of O(database_url).
  - The target's schema comes from the backend's own migrations, imported from the backend's code
    (O(backend_path)) and applied by the backend's own C(PostgresStore.migrate()), so the tables are exactly
    those the backend creates. A backup at an older schema version is first brought up to date by the
    backend's C(SqliteStore.migrate()) on the scratch copy. A backup or target at a schema version the
    backend's code does not know is refused.
  - Every value is converted to the type PostgreSQL declares for its column (integers stored as text,
    0/1 booleans, ISO or epoch timestamps, JSON text, NULLs); a value that has no such form fails the run
    naming the table, column and row.
  - Rows go in with COPY in batches of O(batch_rows), all in one transaction that also empties the tables
    (O(replace)) and resets the sequences, and that commits only when every table's row count and checksum
    (sha256 over a canonical rendering of each row's typed values, computed by the same code on both sides)
    match. A failed run leaves the data as it was (at most the backend's empty schema is created).
  - A target whose backend tables already hold rows is compared with the backup first. If it holds exactly
    the backup, nothing is done (C(changed=false)); otherwise the run is refused unless O(replace=true).
  - Progress lines (table, rows done, rows per second) go to the target host's log, to O(progress_file) when
    set (follow it with C(tail -f)), and into the result.
  - O(action=verify) only compares the backup with the target and fails naming the tables that differ.
author: tengen maintainers
extends_documentation_fragment:
  - tengen.ops.sqlite_backup
attributes:
  check_mode:
    support: full
    description: Verifies the backup, checks the target and returns the plan (tables, rows, target); writes
      nothing to the target.
  diff_mode:
    support: none
options:
  database_url:
    description:
      - C(postgresql://user:password@host:port/database) of the target (the C(DATABASE_URL) the backend uses).
      - The password never appears in the output; the URL is returned with the password masked.
    type: str
    required: true
  direction:
    description:
      - C(sqlite_to_postgres) loads a backup into O(database_url).
      - C(postgres_to_sqlite) is the way back (ECS to the VM); it writes the backend's data from
        O(database_url) into a new SQLite file at O(dest), with the schema of the backend's own SQLite
        migrations, from one consistent snapshot, verified the same way, and renamed into place only once
        complete and verified. The source must be at the backend's latest schema version. Put the file in
        place of the VM's database with M(tengen.ops.sqlite_restore) O(action=swap), the backend stopped.
        An existing O(dest) holding exactly the database leaves the run unchanged; one that differs is
        refused unless O(replace=true). The backup options are not used.
    type: str
    choices: [sqlite_to_postgres, postgres_to_sqlite]
    default: sqlite_to_postgres
  dest:
    description: The SQLite file to write (O(direction=postgres_to_sqlite)); its directory must exist.
    type: path
  action:
    description: C(migrate) copies the data; C(verify) compares both sides and changes nothing.
    type: str
    choices: [migrate, verify]
    default: migrate
  backup:
    description: C(latest) (the newest verified backup) or a backup's name or file name.
    type: str
    default: latest
  source:
    description: Where to take the backup from.
    type: str
    choices: [local, s3]
    default: local
  backend_path:
    description:
      - Directory holding the backend's package C(tengen_app) (C(files/app) in this repository,
        C(/opt/tengen) in the backend image), whose migrations define the target's schema.
      - When unset, C(tengen_app) must be importable on the host (as in the backend image).
    type: path
  replace:
    description: Empty the backend's tables in a target that holds other data and load the backup
      (with O(direction=postgres_to_sqlite), write O(dest) anew).
    type: bool
    default: false
  batch_rows:
    description: Rows per COPY statement.
    type: int
    default: 5000
  work_dir:
    description: Directory for the scratch copy of the backup (removed at the end); the system's when unset.
    type: path
  progress_file:
    description: File the progress lines are appended to, for an operator to follow.
    type: path
requirements:
  - psycopg 3 on the host running the module (Debian C(python3-psycopg))
  - the backend's code (O(backend_path))
notes:
  - Run it where the backup, the backend's code and the database are all reachable, typically on the
    controller with O(backend_path) pointing at this repository's C(files/app) (the code of the image the
    ECS services run) and a route to the database; stop the VM's backend and take a fresh backup first.
"""

EXAMPLES = r"""
- name: Move the latest backup into RDS
  tengen.ops.sqlite_to_postgres:
    backup_dir: /var/backups/tengen
    encryption_key: "{{ vault_backup_key }}"
    database_url: "{{ vault_database_url }}"
    backend_path: "{{ playbook_dir }}/../files/app"
    progress_file: /var/tmp/tengen-migration.log
  delegate_to: localhost

- name: Bring the data back from RDS to a SQLite file for the VM
  tengen.ops.sqlite_to_postgres:
    direction: postgres_to_sqlite
    database_url: "{{ vault_database_url }}"
    dest: /var/lib/tengen/.from-postgres.db
    backend_path: /opt/tengen

- name: Check that the database still holds the backup
  tengen.ops.sqlite_to_postgres:
    action: verify
    source: s3
    s3: {bucket: tengen-backups, prefix: prod, region: eu-west-1}
    backup: tengen-20261202T120000Z
    database_url: "{{ vault_database_url }}"
    backend_path: /opt/tengen
"""

RETURN = r"""
backup:
  description: The backup used (name, source, manifest).
  returned: always, once the backup was found
  type: dict
plan:
  description: Target (password masked), schema versions, rows per table to copy, rows the target holds.
  returned: always, once the backup was verified
  type: dict
  sample:
    target: "postgresql://tengen:********@db.internal:5432/tengen"
    schema_version: 2
    backend_version: 2
    tables: {games: 120000, schema_version: 2}
    target_rows: {}
    replace: false
tables:
  description: Per copied table, rows, seconds and rows per second.
  returned: when rows were copied
  type: dict
  sample: {games: {rows: 120000, seconds: 14.2, rows_per_second: 8450}}
rows_per_second:
  description: Rows copied per second over the whole copy and verification.
  returned: when rows were copied
  type: int
verification:
  description: Row counts and checksums per table on both sides, and the tables that differ.
  returned: when the target was compared
  type: dict
progress:
  description: The progress lines, in order.
  returned: always
  type: list
  elements: str
"""

import os  # noqa: E402
import shutil  # noqa: E402
import sqlite3  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.tengen.ops.plugins.module_utils import sqlite_backup as sb  # noqa: E402
from ansible_collections.tengen.ops.plugins.module_utils import sqlite_to_postgres as s2p  # noqa: E402


class Progress:
    """Progress lines to the host's log, an optional file and the result."""

    def __init__(self, module: AnsibleModule, path: str | None) -> None:
        self.module = module
        self.path = path
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        stamped = f"{time.strftime('%H:%M:%S')} {line}"
        self.lines.append(stamped)
        self.module.log(f"sqlite_to_postgres: {line}")
        if self.path:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(stamped + "\n")


def back_to_sqlite(module: AnsibleModule, store: Any, result: dict[str, Any], progress: Progress) -> None:
    """PostgreSQL to a new SQLite file at dest (the way back from ECS to the VM); exits the module."""
    p = module.params
    url, dest = p["database_url"], p["dest"]
    plan = s2p.plan_export(store, url, dest)
    result["plan"] = plan
    progress(f"plan: {plan['tables']} from {plan['source']} into {dest}")
    if p["action"] == "verify" or os.path.exists(dest):
        verification = s2p.verify(dest, url)
        result["verification"] = verification
        same = not verification["mismatched"]
        differences = s2p.describe_mismatch(verification, dest, "PostgreSQL")
        if p["action"] == "verify":
            if not same:
                module.fail_json(
                    msg=f"verification failed: {differences}",
                    **result,
                )
            module.exit_json(msg=f"{dest} holds exactly the database", **result)
        if same:
            module.exit_json(msg=f"{dest} holds exactly the database already", **result)
        if not p["replace"]:
            module.fail_json(
                msg=f"dest: {dest} exists and differs ({differences});"
                " nothing changed. Set replace: true to write it anew",
                **result,
            )
    result["changed"] = True
    if module.check_mode:
        module.exit_json(msg=f"would write {sum(plan['tables'].values())} rows into {dest}", **result)
    done = s2p.export(store, url, dest, batch_rows=p["batch_rows"], progress=progress)
    result.update({k: v for k, v in done.items() if k != "plan"})
    module.exit_json(msg=f"wrote and verified {done['rows']} rows into {dest}", **result)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "database_url": {"type": "str", "required": True, "no_log": True},
            "action": {"type": "str", "choices": ["migrate", "verify"], "default": "migrate"},
            "direction": {
                "type": "str",
                "choices": ["sqlite_to_postgres", "postgres_to_sqlite"],
                "default": "sqlite_to_postgres",
            },
            "dest": {"type": "path"},
            "backup": {"type": "str", "default": "latest"},
            "source": {"type": "str", "choices": ["local", "s3"], "default": "local"},
            "backup_dir": {"type": "path"},
            "s3": {"type": "dict", "options": sb.S3_ARGUMENT_SPEC},
            "encryption_key": {"type": "str", "no_log": True},
            "encryption_keys": {"type": "list", "elements": "str", "no_log": True},
            "backend_path": {"type": "path"},
            "replace": {"type": "bool", "default": False},
            "batch_rows": {"type": "int", "default": 5000},
            "work_dir": {"type": "path"},
            "progress_file": {"type": "path"},
        },
        required_if=[("source", "s3", ["s3"]), ("direction", "postgres_to_sqlite", ["dest"])],
        mutually_exclusive=[("encryption_key", "encryption_keys")],
        supports_check_mode=True,
    )
    p = module.params
    url = p["database_url"]
    progress = Progress(module, p["progress_file"])
    result: dict[str, Any] = {"changed": False, "progress": progress.lines}

    def fail(msg: str, **extra: Any) -> None:
        module.fail_json(msg=s2p.scrub(msg, url), **result, **extra)

    if p["batch_rows"] < 1:
        fail("batch_rows must be at least 1")
    if p["work_dir"] and not os.path.isdir(p["work_dir"]):
        fail(f"work_dir: {p['work_dir']} is not a directory")
    scratch = None
    try:
        s2p.check_url(url)
        store = s2p.load_backend(p["backend_path"])
        if p["direction"] == "postgres_to_sqlite":
            back_to_sqlite(module, store, result, progress)
        if p["source"] == "local" and not p["backup_dir"]:
            fail("backup_dir is required to take a local backup")
        s3 = sb.s3_from_dict(p["s3"]) if p["source"] == "s3" else None
        scratch = tempfile.mkdtemp(prefix=".tengen-migrate-", dir=p["work_dir"])
        copy_path = os.path.join(scratch, "backup.db")
        progress("verifying the backup")
        unpacked = sb.fetch_and_unpack(
            copy_path,
            backup_dir=p["backup_dir"],
            s3=s3,
            wanted=p["backup"],
            key=p["encryption_keys"] or p["encryption_key"],  # a keyring after a rotation, or one key
        )
        result["backup"] = {
            "name": unpacked["name"],
            "source": unpacked["source"],
            "manifest": unpacked["manifest"],
        }
        progress(f"backup {unpacked['name']} verified: {unpacked['tables']}")
        # An older backup is compared and copied at the backend's schema: SQLite would read a
        # column it lacks as the column's name, a string.
        s2p.upgrade_sqlite(store, copy_path)
        plan = s2p.plan(store, copy_path, url, p["replace"])
        result["plan"] = plan.as_dict()
        progress(f"plan: {plan.tables} into {plan.target} (holding {plan.target_rows})")

        if p["action"] == "verify" or plan.busy:
            verification = s2p.verify(copy_path, url)
            result["verification"] = verification
            same = not verification["mismatched"]
            if p["action"] == "verify":
                if not same:
                    fail(f"verification failed: {s2p.describe_mismatch(verification)}")
                progress("the target holds exactly the backup")
                module.exit_json(msg="the target holds exactly the backup", **result)
            if same:
                progress("the target holds exactly the backup already; nothing to do")
                module.exit_json(msg="the target holds exactly the backup already", **result)
            if not p["replace"]:
                fail(f"{plan.refusal()} ({s2p.describe_mismatch(verification)})")

        result["changed"] = True
        if module.check_mode:
            module.exit_json(msg=f"would copy {sum(plan.tables.values())} rows into {plan.target}", **result)
        done = s2p.migrate(
            store, copy_path, url, replace=p["replace"], batch_rows=p["batch_rows"], progress=progress
        )
        result.update({k: v for k, v in done.items() if k != "plan"})
        module.exit_json(msg=f"copied and verified {done['rows']} rows into {plan.target}", **result)
    except s2p.VerificationFailed as exc:
        result["changed"] = False
        fail(str(exc), mismatched=exc.tables)
    except (s2p.MigrationError, sb.BackupError, sqlite3.Error, OSError) as exc:
        result["changed"] = False
        fail(f"{p['action']} refused: {exc}")
    except Exception as exc:  # boto3/botocore or psycopg errors not foreseen above
        result["changed"] = False
        fail(f"{p['action']} failed: {exc}", exception=s2p.scrub(traceback.format_exc(), url))
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
