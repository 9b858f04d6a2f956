#!/usr/bin/python
"""Module: read the state of the game VM for tengen's status (services, releases, TLS, backups, disk)."""

from __future__ import annotations

import os
import socket
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tengen.ops.plugins.module_utils.audit import tail
from ansible_collections.tengen.ops.plugins.module_utils.stack_status import (
    collect_backups,
    collect_certificate,
    collect_disks,
    parse_compose_ps,
    read_json,
    services,
)

DOCUMENTATION = r"""
module: stack_status
short_description: Read the state of a tengen game VM, for the status at a glance
version_added: 0.1.0
description:
  - Reads, and never changes, what the game VM says about itself. The Compose services (those of
    the project's Compose file, each with its container's state and health, from
    C(docker compose ps --all)); the release ledger (C(tengen.ops.release_state)'s file); the
    expiry of Caddy's certificate for the site (from Caddy's data directory); sqlite_backup's status
    file and its local manifests; the used and free space of the given paths' filesystems; the
    maintenance flag; and the last entries of the audit trail (C(tengen.ops.audit)).
  - The lines and the problems are made from this on the controller by the
    C(tengen.ops.status_lines) filter.
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
options:
  project_dir:
    description: The Compose project's directory (its compose.yml and releases.json).
    type: path
    default: /opt/tengen
  project_name:
    description: The Compose project's name.
    type: str
    default: tengen
  caddy_data_dir:
    description: Caddy's data directory on the VM; empty reads no certificate.
    type: path
    default: /var/lib/tengen-caddy
  site:
    description: The site's name, as Caddy stores its certificate.
    type: str
    default: localhost
  backup_dir:
    description: sqlite_backup's local backup directory; empty reads no backups.
    type: path
    default: /var/backups/tengen
  backup_status_file:
    description: sqlite_backup's status file.
    type: path
    default: /var/lib/tengen-backup/status.json
  disk_paths:
    description: Paths whose filesystems are measured (each filesystem once).
    type: list
    elements: path
    default: [/var/lib/tengen, /var/backups/tengen, /]
  maintenance_flag:
    description: The maintenance flag file (present means on).
    type: path
    default: /var/lib/tengen/maintenance.json
  audit_file:
    description: The audit trail.
    type: path
    default: /var/log/tengen/audit.jsonl
  audit_entries:
    description: How many of the last audit entries to return.
    type: int
    default: 5
"""

EXAMPLES = r"""
- name: Read the state of the VM
  tengen.ops.stack_status:
    site: play.example.org
  register: state

- name: Show it
  ansible.builtin.debug:
    msg: "{{ (state.status | tengen.ops.status_lines(thresholds)).lines | join('\n') }}"
"""

RETURN = r"""
status:
  description:
    - C(host), C(now) (seconds since the epoch), C(services) (service, state, health, status,
      exit_code, expected), C(services_error), C(releases) (the ledger), C(certificate) (site,
      not_before, not_after, issuer_dir, path; or error), C(backups) (status, local_count,
      newest_local), C(disks) (path, also, total_bytes, free_bytes, used_percent),
      C(maintenance) (the flag's content, null when off), C(audit) (the last entries, oldest first).
  type: dict
  returned: always
"""


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "project_dir": {"type": "path", "default": "/opt/tengen"},
            "project_name": {"type": "str", "default": "tengen"},
            "caddy_data_dir": {"type": "path", "default": "/var/lib/tengen-caddy"},
            "site": {"type": "str", "default": "localhost"},
            "backup_dir": {"type": "path", "default": "/var/backups/tengen"},
            "backup_status_file": {"type": "path", "default": "/var/lib/tengen-backup/status.json"},
            "disk_paths": {
                "type": "list",
                "elements": "path",
                "default": ["/var/lib/tengen", "/var/backups/tengen", "/"],
            },
            "maintenance_flag": {"type": "path", "default": "/var/lib/tengen/maintenance.json"},
            "audit_file": {"type": "path", "default": "/var/log/tengen/audit.jsonl"},
            "audit_entries": {"type": "int", "default": 5},
        },
        supports_check_mode=True,
    )
    p = module.params
    compose = ["docker", "compose", "--project-directory", p["project_dir"], "-p", p["project_name"]]
    status: dict = {"host": socket.gethostname(), "now": int(time.time())}

    rc, out, err = module.run_command(compose + ["config", "--services"])
    expected = out.split() if rc == 0 else []
    rc_ps, out_ps, err_ps = module.run_command(compose + ["ps", "--all", "--format", "json"])
    if rc != 0 or rc_ps != 0:
        status["services_error"] = (
            f"docker compose in {p['project_dir']}: {(err or err_ps).strip() or 'failed'}"
        )
    try:
        status["services"] = services(expected, parse_compose_ps(out_ps) if rc_ps == 0 else [])
    except ValueError as exc:
        status["services"] = []
        status["services_error"] = f"docker compose ps gave no JSON: {exc}"

    status["releases"] = read_json(os.path.join(p["project_dir"], "releases.json"))
    if p["caddy_data_dir"]:
        status["certificate"] = collect_certificate(p["caddy_data_dir"], p["site"])
    if p["backup_dir"]:
        status["backups"] = collect_backups(p["backup_dir"], p["backup_status_file"])
    status["disks"] = collect_disks(p["disk_paths"])
    status["maintenance"] = read_json(p["maintenance_flag"])
    status["audit"] = tail(p["audit_file"], p["audit_entries"])
    module.exit_json(changed=False, status=status)


if __name__ == "__main__":
    main()
