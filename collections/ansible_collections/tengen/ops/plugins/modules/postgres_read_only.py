#!/usr/bin/python
"""Make the stack's database refuse every write, or accept writes again (the rollback's freeze)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: postgres_read_only
short_description: Make a PostgreSQL database refuse writes from every session, or accept them again
description:
  - With O(read_only=true), sets C(default_transaction_read_only) on the database (C(ALTER DATABASE))
    and ends every other session of it, so that each client reconnects read-only. The backend
    answers a write it cannot make with 503 and C(Retry-After), and serves reads on.
  - With O(read_only=false), resets the setting; sessions opened from then on can write.
  - This is how C(playbooks/scale-out/rollback.yml) stops every ECS replica writing at once while
    the data is copied back to the VM, and keeps the stack from taking writes after it.
  - Needs a user that owns the database (RDS's master user does) and may end its sessions.
version_added: 0.1.0
author: tengen maintainers
options:
  database_url:
    description: C(postgresql://user:password@host:port/database); the password never appears in the output.
    type: str
    required: true
  read_only:
    description: Whether the database refuses writes.
    type: bool
    required: true
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
requirements:
  - psycopg 3 on the host that runs it
"""

EXAMPLES = r"""
- name: Stop every replica writing
  tengen.ops.postgres_read_only:
    database_url: "{{ vault_database_url }}"
    read_only: true
  delegate_to: localhost
"""

RETURN = r"""
database:
  description: The database's name.
  returned: always
  type: str
terminated:
  description: Sessions ended so that they reconnect read-only.
  returned: when O(read_only=true) and the setting changed
  type: int
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.tengen.ops.plugins.module_utils.sqlite_to_postgres import (  # noqa: E402
    connect,
    mask_url,
    scrub,
)

SETTING = "default_transaction_read_only=on"


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "database_url": {"type": "str", "required": True, "no_log": True},
            "read_only": {"type": "bool", "required": True},
        },
        supports_check_mode=True,
    )
    url, wanted = module.params["database_url"], module.params["read_only"]
    try:
        pg = connect(url)
    except Exception as exc:  # noqa: BLE001 - every failure to connect is reported the same way
        module.fail_json(msg=f"cannot reach {mask_url(url)}: {scrub(str(exc), url)}")
    with pg:
        database, settings = pg.execute(
            "SELECT current_database(), (SELECT setconfig FROM pg_db_role_setting WHERE setrole = 0"
            " AND setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database()))"
        ).fetchone()
        now = SETTING in (settings or [])
        result = {"changed": now != wanted, "database": database}
        if now == wanted or module.check_mode:
            module.exit_json(**result)
        try:
            # This session may have opened read-only (the database was): it must write the change.
            pg.execute("SET default_transaction_read_only = off")
            name = pg.execute("SELECT quote_ident(current_database())").fetchone()[0]
            if wanted:
                pg.execute(f"ALTER DATABASE {name} SET default_transaction_read_only = on")
                # Open sessions keep the setting they started with: end them, so they reconnect read-only.
                result["terminated"] = pg.execute(
                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                ).fetchone()[0]
            else:
                pg.execute(f"ALTER DATABASE {name} RESET default_transaction_read_only")
        except Exception as exc:  # noqa: BLE001
            module.fail_json(msg=f"{mask_url(url)}: {scrub(str(exc), url)}", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
