#!/usr/bin/python
"""Verify a SQLite backup, stage it, swap it into place, or drill a restore."""

from __future__ import annotations

DOCUMENTATION = r"""
module: sqlite_restore
short_description: Verify a SQLite backup and restore it, or drill a restore against the live database
version_added: 0.1.0
description:
  - Picks the latest verified or a named backup made by M(tengen.ops.sqlite_backup), from the local backup
    directory or from an S3-compatible bucket.
  - O(action=stage) verifies it (file sha256 against the manifest, key fingerprint, decryption, decompression,
    database sha256, C(PRAGMA integrity_check), row counts against the manifest) and only then writes the
    database to O(dest). A backup that fails any check is refused and O(dest) is left alone.
  - O(action=swap) puts a staged database in place of O(db_path) in one rename, keeping the database it
    replaces (with its WAL) as O(db_path) + O(keep_suffix). Stop the service using the database first.
  - O(action=handover) does what O(action=swap) does, and stops and starts the backend around it, in a
    transient systemd unit on the target that finishes without the controller. Under the backups' lock, with
    the backup timer stopped, it stops the backend, swaps, starts the backend and the timer and prunes old
    replaced databases (O(keep_replaced)). If the unit stops half-way (killed, or over O(timeout)), its
    C(ExecStopPost) starts the backend and the timer again, on whichever whole database is in place. Needs the
    C(tengen-backup) command that the C(sqlite_backup) role installs.
  - O(action=drill) stages the backup to a scratch O(dest), compares its row counts and, for the backend's
    schema, every game's move count with the live database (opened read-only) and removes the scratch copy.
    It fails when the restored copy lacks a live table, or when a game holds fewer moves live than in the
    backup (a game's moves only grow, so a move was lost). Games missing live are reported, not failed.
author: tengen maintainers
extends_documentation_fragment:
  - tengen.ops.sqlite_backup
attributes:
  check_mode:
    support: full
    description: Resolves the backup (stage, drill) or checks the staged file (swap); writes nothing.
  diff_mode:
    support: none
options:
  action:
    description: What to do.
    type: str
    choices: [stage, swap, handover, drill]
    default: stage
  backup:
    description: C(latest) (the newest verified backup) or a backup's name or file name.
    type: str
    default: latest
  source:
    description: Where to take the backup from.
    type: str
    choices: [local, s3]
    default: local
  dest:
    description:
      - O(action=stage) and O(action=drill) write the verified database here (its directory must exist).
      - O(action=swap) takes the staged database from here; it must be on the same filesystem as O(db_path).
    type: path
    required: true
  db_path:
    description: The live database (O(action=swap) replaces it, O(action=drill) reads it).
    type: path
  min_free_mb:
    description:
      - MiB that must stay free beside O(dest) after O(action=stage) or O(action=drill); refused before
        writing when the download, the decrypted stream and the database would not fit with this reserve.
      - V(0) for no check.
    type: int
    default: 0
  keep_suffix:
    description: Suffix of the kept, replaced database (O(action=swap)); must not name an existing file.
    type: str
    default: .pre-restore
  keep_replaced:
    description: O(action=handover) keeps this many replaced databases (C(DB.pre-restore*)), newest first.
    type: int
    default: 2
  backend:
    description: What O(action=handover) stops and starts.
    type: dict
    suboptions:
      kind:
        description: compose, systemd or none.
        type: str
        choices: [compose, systemd, none]
        default: none
      compose_dir:
        description: The compose project directory.
        type: path
      services:
        description: The compose services to stop and start.
        type: list
        elements: str
        default: []
      unit:
        description: The systemd unit.
        type: str
  timer:
    description: The backup timer O(action=handover) stops while it runs (started again only if it ran).
    type: str
    default: tengen-backup.timer
  timeout:
    description: Seconds the O(action=handover) unit may run (lock wait included) before systemd stops it.
    type: int
    default: 900
  env_file:
    description: The C(tengen-backup) configuration (database, backup and status paths) the unit reads.
    type: path
    default: /etc/tengen-backup/backup.env
  state_dir:
    description: Where C(tengen-backup) keeps its status (the unit writes its result there).
    type: path
    default: /var/lib/tengen-backup
"""

EXAMPLES = r"""
- name: Verify the latest backup and stage it beside the live database
  tengen.ops.sqlite_restore:
    action: stage
    backup_dir: /var/backups/tengen
    dest: /var/lib/tengen/.restore.db
    encryption_key: "{{ vault_backup_key }}"
  register: staged

- name: Swap the staged database in (the backend is stopped)
  tengen.ops.sqlite_restore:
    action: swap
    dest: /var/lib/tengen/.restore.db
    db_path: /var/lib/tengen/tengen.db
    keep_suffix: ".pre-restore-{{ staged.backup.name }}"

- name: Drill a restore of the newest backup in the bucket
  tengen.ops.sqlite_restore:
    action: drill
    source: s3
    s3: {bucket: tengen-backups, prefix: prod, region: eu-west-1}
    dest: /var/tmp/tengen-drill.db
    db_path: /var/lib/tengen/tengen.db
"""

RETURN = r"""
backup:
  description: The backup used (name, source, manifest).
  returned: action is stage or drill
  type: dict
  sample: {name: tengen-20261123T164700Z, source: /var/backups/tengen/tengen-20261123T164700Z.db.zst}
tables:
  description: Row counts of the restored database, per table.
  returned: action is stage or drill, not in check mode
  type: dict
  sample: {games: 120, moves: 9800}
comparison:
  description:
    - Per table, the restored and live row counts and their difference (live minus restored).
    - C(moves) (backend schema only) - games and moves on each side, the games with fewer moves live
      (C(games_with_lost_moves), the first in C(lost)) and the games missing live.
  returned: action is drill, not in check mode
  type: dict
kept:
  description: Files the swap kept (the replaced database, its -wal and -shm).
  returned: action is swap or handover, not in check mode
  type: list
  elements: str
pruned:
  description: Older replaced databases removed (O(keep_replaced)).
  returned: action is handover, not in check mode
  type: list
  elements: str
"""

import json  # noqa: E402
import os  # noqa: E402
import sqlite3  # noqa: E402
import traceback  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.tengen.ops.plugins.module_utils import sqlite_backup as sb  # noqa: E402


def _pick(module: AnsibleModule, s3: sb.S3Target | None) -> sb.Backup:
    p = module.params
    skipped: list[str] = []
    backups = sb.list_s3(s3, skipped) if s3 is not None else sb.list_local(p["backup_dir"])
    _warn_skipped(module, skipped)
    return sb.find_backup(backups, p["backup"])


def _game_moves(path: str) -> dict[str, int] | None:
    conn = sb.open_existing(path, readonly=True)
    try:
        return sb.game_move_counts(conn)
    finally:
        conn.close()


def _warn_skipped(module: AnsibleModule, skipped: list[str]) -> None:
    for name in skipped:
        module.warn(f"skipped {name} in the bucket: not a backup manifest of ours")


def _handover(module: AnsibleModule) -> None:
    """Run the swap in a transient unit; this process (and the controller) may die, the unit goes on."""
    p = module.params
    backend = p["backend"] or {"kind": "none"}
    sb.BackendControl(
        backend["kind"], backend.get("compose_dir"), backend.get("services") or [], backend.get("unit")
    )
    argv = sb.restore_unit_argv(
        staged=p["dest"],
        keep_suffix=p["keep_suffix"],
        backend=backend,
        timer=p["timer"],
        keep_replaced=p["keep_replaced"],
        timeout=p["timeout"],
        env_file=p["env_file"],
    )
    result_path = os.path.join(p["state_dir"], sb.RESTORE_RESULT)
    if os.path.exists(result_path):  # an earlier restore's outcome must not pass for this one's
        os.unlink(result_path)
    rc, out, err = module.run_command(argv)
    try:
        with open(result_path, "rb") as handle:
            outcome = json.loads(handle.read())
    except (OSError, ValueError):
        outcome = {"ok": False, "error": f"the restore unit left no result (rc {rc}): {(err or out).strip()}"}
    if rc != 0 or not outcome.get("ok"):
        module.fail_json(msg=f"handover refused: {outcome.get('error')}", rc=rc, stderr=err)
    module.exit_json(changed=True, kept=outcome.get("kept", []), pruned=outcome.get("pruned", []))


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "action": {"type": "str", "choices": ["stage", "swap", "handover", "drill"], "default": "stage"},
            "backup": {"type": "str", "default": "latest"},
            "source": {"type": "str", "choices": ["local", "s3"], "default": "local"},
            "backup_dir": {"type": "path"},
            "s3": {"type": "dict", "options": sb.S3_ARGUMENT_SPEC},
            "encryption_key": {"type": "str", "no_log": True},
            "encryption_keys": {"type": "list", "elements": "str", "no_log": True},
            "dest": {"type": "path", "required": True},
            "db_path": {"type": "path"},
            "keep_suffix": {"type": "str", "default": ".pre-restore"},
            "min_free_mb": {"type": "int", "default": 0},
            "keep_replaced": {"type": "int", "default": 2},
            "backend": {
                "type": "dict",
                "options": {
                    "kind": {"type": "str", "choices": ["compose", "systemd", "none"], "default": "none"},
                    "compose_dir": {"type": "path"},
                    "services": {"type": "list", "elements": "str", "default": []},
                    "unit": {"type": "str"},
                },
            },
            "timer": {"type": "str", "default": "tengen-backup.timer"},
            "timeout": {"type": "int", "default": 900},
            "env_file": {"type": "path", "default": "/etc/tengen-backup/backup.env"},
            "state_dir": {"type": "path", "default": "/var/lib/tengen-backup"},
        },
        required_if=[
            ("source", "s3", ["s3"]),
            ("action", "swap", ["db_path"]),
            ("action", "handover", ["db_path"]),
            ("action", "drill", ["db_path"]),
        ],
        mutually_exclusive=[("encryption_key", "encryption_keys")],
        supports_check_mode=True,
    )
    p = module.params
    keys = p["encryption_keys"] if p["encryption_keys"] else p["encryption_key"]
    try:
        if p["action"] in ("swap", "handover"):
            kept = f"{p['db_path']}{p['keep_suffix']}"
            if os.path.exists(kept):
                module.fail_json(msg=f"keep_suffix: {kept} exists already; nothing swapped")
            if not os.path.isfile(p["dest"]):
                module.fail_json(msg=f"dest: no staged database at {p['dest']}; nothing swapped")
            if module.check_mode:
                check = sb.integrity_check(p["dest"])
                if check != "ok":
                    module.fail_json(msg=f"dest: {p['dest']} failed integrity_check: {check}")
                module.exit_json(changed=True, kept=[kept])
            if p["keep_replaced"] < 1:
                module.fail_json(
                    msg=f"keep_replaced must be at least 1, got {p['keep_replaced']}; nothing swapped"
                )
            if p["action"] == "handover":
                _handover(module)
            swapped = sb.swap_database(p["dest"], p["db_path"], p["keep_suffix"])
            module.exit_json(changed=True, **swapped)

        if p["source"] == "local" and not p["backup_dir"]:
            module.fail_json(msg=f"backup_dir is required to {p['action']} a local backup")
        s3 = sb.s3_from_dict(p["s3"]) if p["source"] == "s3" else None
        if p["action"] == "drill" and not os.path.isfile(p["db_path"]):
            module.fail_json(msg=f"db_path: database {p['db_path']} does not exist")
        if module.check_mode:
            backup = _pick(module, s3)
            module.exit_json(changed=True, backup={"name": backup.name, "manifest": backup.manifest})
        result = sb.fetch_and_unpack(
            p["dest"],
            backup_dir=p["backup_dir"],
            s3=s3,
            wanted=p["backup"],
            key=keys,
            min_free_mb=p["min_free_mb"],
        )
        _warn_skipped(module, result["skipped"])
        backup_info = {"name": result["name"], "source": result["source"], "manifest": result["manifest"]}
        if p["action"] == "stage":
            module.exit_json(changed=True, backup=backup_info, tables=result["tables"], dest=p["dest"])

        # drill: compare with the live database (rows, and every game's moves), then remove the scratch copy
        try:
            restored_moves = _game_moves(p["dest"])
            live_moves = _game_moves(p["db_path"])
            conn = sb.open_existing(p["db_path"], readonly=True)
            try:
                live = sb.table_row_counts(conn)
            finally:
                conn.close()
        finally:
            os.unlink(p["dest"])
        comparison = sb.compare_row_counts(result["tables"], live)
        if restored_moves is not None and live_moves is not None:
            comparison["moves"] = sb.compare_game_moves(restored_moves, live_moves)
        if comparison["missing_in_restored"]:
            module.fail_json(
                msg=f"the restored copy of {result['name']} lacks the live tables "
                f"{comparison['missing_in_restored']}",
                backup=backup_info,
                comparison=comparison,
            )
        lost = comparison.get("moves", {}).get("games_with_lost_moves")
        if lost:
            module.fail_json(
                msg=f"{lost} games hold fewer moves live than in {result['name']} (moves only grow): "
                f"moves were lost, e.g. {comparison['moves']['lost']}",
                backup=backup_info,
                comparison=comparison,
            )
        module.exit_json(changed=False, backup=backup_info, tables=result["tables"], comparison=comparison)
    except (sb.BackupError, sqlite3.Error, OSError) as exc:
        module.fail_json(msg=f"{p['action']} refused: {exc}", exception=traceback.format_exc())
    except Exception as exc:  # boto3/botocore errors: an unreachable or misconfigured bucket
        module.fail_json(msg=f"{p['action']} failed: {exc}", exception=traceback.format_exc())


if __name__ == "__main__":
    main()
