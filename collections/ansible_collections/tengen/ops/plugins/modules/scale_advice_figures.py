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

import json  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.tengen.ops.plugins.module_utils.scale_figures import sample  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def tree(pid: int) -> list[int]:
    """The process and all its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            continue  # gone between two reads
    return out


def proc(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) and resident memory (MB) of a process tree."""
    cpu = rss = 0.0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{p}/statm") as f:
                pages = int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue
        cpu += (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime
        rss += pages * PAGE / 2**20
    return {"cpu_seconds": cpu, "rss_mb": rss}


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 (a URL the playbook built)
        return resp.read().decode()


def target(item: dict, port: int) -> dict:
    """{url, pid} as given, or from a container's inspect result."""
    if "url" in item and "pid" in item:
        return {"url": item["url"], "pid": int(item["pid"])}
    try:
        pid = int(item["State"]["Pid"])
        address = next(
            n["IPAddress"] for n in item["NetworkSettings"]["Networks"].values() if n.get("IPAddress")
        )
    except (KeyError, TypeError, StopIteration, ValueError):
        raise ValueError(f"{item.get('Name', item)!r}: neither url and pid nor a running container") from None
    if pid <= 0:
        raise ValueError(f"{item.get('Name')}: the container is not running")
    return {"url": f"http://{address}:{port}/metrics", "pid": pid}


def reading(backend: list[dict], engine: dict) -> dict:
    return {
        "time": time.time(),
        "backend": [scrape(b["url"]) for b in backend],
        "engine": scrape(engine["url"]),
        "backend_proc": _sum(proc(b["pid"]) for b in backend),
        "engine_proc": proc(engine["pid"]),
    }


def _sum(parts) -> dict[str, float]:
    out = {"cpu_seconds": 0.0, "rss_mb": 0.0}
    for part in parts:
        out = {k: out[k] + part[k] for k in out}
    return out


def instant(params: dict) -> dict:
    db = params["db_path"]
    size = sum(os.path.getsize(p) for p in (db, f"{db}-wal") if os.path.exists(p))
    disk = os.statvfs(os.path.dirname(db) or "/")
    out = {
        "db_size_mb": size / 2**20,
        "disk_free_gb": disk.f_bavail * disk.f_frsize / 2**30,
        "disk_total_gb": disk.f_blocks * disk.f_frsize / 2**30,
    }
    status = params.get("backup_status_file")
    if status and os.path.exists(status):
        with open(status) as f:
            last = json.load(f).get("last_success_epoch")
        if last:
            out["backup_age_hours"] = max(0.0, time.time() - float(last)) / 3600
    return out


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
        after = {**reading(backend, engine), **instant(params)}
        result = sample(before, after)
    except OSError as exc:
        module.fail_json(msg=f"Cannot read the service's figures: {exc}")
    module.exit_json(changed=False, sample=result)


if __name__ == "__main__":
    main()
