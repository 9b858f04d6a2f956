#!/usr/bin/python
"""Measure one sample of the figures the scale-out advice reads, on the VM."""

from __future__ import annotations

DOCUMENTATION = r"""
module: scale_advice_figures
short_description: Measure one sample of the figures the scale-out advice reads, on the VM
description:
  - Reads the backend's and the engine gateway's Prometheus C(/metrics), the CPU time and memory
    of their processes (each container's main process and its children, from C(/proc)), twice,
    I(seconds) apart, and returns the rates and percentiles between the two readings.
  - Adds the database's size (with its WAL), the free and total disk where the database lives,
    and the age of the newest backup from the backup status file when there is one.
  - Reads only; changes nothing. The metric names and what each figure means are listed in
    C(module_utils/scale_figures.py) and docs/scale-out.md.
version_added: 0.1.0
author: tengen maintainers
options:
  backend:
    description:
      - The backend's processes (one per live slot), each with C(url) (its /metrics) and C(pid),
        or the container's C(docker inspect) result (its main process and its address on the
        first network, port I(backend_port)).
    type: list
    elements: dict
    required: true
  engine:
    description: The engine gateway, with C(url) and C(pid), or its container's C(docker inspect) result.
    type: dict
    required: true
  backend_port:
    description: The backend's port inside its container.
    type: int
    default: 8000
  engine_port:
    description: The engine gateway's port inside its container.
    type: int
    default: 8001
  seconds:
    description: Time between the two readings; rates and percentiles cover it.
    type: float
    default: 10
  db_path:
    description: The SQLite database; its size includes the C(-wal) file.
    type: path
    required: true
  backup_status_file:
    description: The sqlite_backup status (JSON with C(last_success_epoch)); missing means no backup age.
    type: path
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Measure the load for a minute
  tengen.ops.scale_advice_figures:
    backend: [{url: "http://172.18.0.5:8000/metrics", pid: 4242}]
    engine: {url: "http://172.18.0.4:8001/metrics", pid: 4100}
    seconds: 60
    db_path: /var/lib/tengen/tengen.db
    backup_status_file: /var/lib/tengen-backup/status.json
  register: sample
"""

RETURN = r"""
sample:
  description: One sample for the scale_advice module (time, websockets, request_rate, ...).
  returned: success
  type: dict
"""

import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.tengen.ops.plugins.module_utils.scale_figures import (  # noqa: E402
    instant,
    reading,
    sample,
    target,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "backend": {"type": "list", "elements": "dict", "required": True},
            "engine": {"type": "dict", "required": True},
            "backend_port": {"type": "int", "default": 8000},
            "engine_port": {"type": "int", "default": 8001},
            "seconds": {"type": "float", "default": 10},
            "db_path": {"type": "path", "required": True},
            "backup_status_file": {"type": "path"},
        },
        supports_check_mode=True,
    )
    params = module.params
    if not params["backend"]:
        module.fail_json(msg="backend: no backend process given; is the stack running?")
    if params["seconds"] <= 0:
        module.fail_json(msg=f"seconds: {params['seconds']} must be above 0")
    try:
        backend = [target(b, params["backend_port"]) for b in params["backend"]]
        engine = target(params["engine"], params["engine_port"])
    except ValueError as exc:
        module.fail_json(msg=f"Cannot find the service's processes: {exc}")
    try:
        before = reading(backend, engine)
        time.sleep(params["seconds"])
        after = {**reading(backend, engine), **instant(params["db_path"], params["backup_status_file"])}
        result = sample(before, after)
    except OSError as exc:
        module.fail_json(msg=f"Cannot read the service's figures: {exc}")
    module.exit_json(changed=False, sample=result)


if __name__ == "__main__":
    main()
