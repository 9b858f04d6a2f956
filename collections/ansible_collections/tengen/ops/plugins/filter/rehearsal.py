"""Filters for the aws_rehearsal role: HAProxy's view of its servers."""

from __future__ import annotations

import csv
import io
from typing import Any

from ansible_collections.tengen.ops.plugins.module_utils.ecs_rehearsal import image_reference

DOCUMENTATION = r"""
name: haproxy_servers
short_description: The servers of an HAProxy stats CSV, with their health
version_added: 0.1.0
description:
  - Parses the answer of HAProxy's C(/stats;csv) page (or C(show stat)) and returns one entry per
    server (not the FRONTEND and BACKEND summary rows) with its backend, name, status (C(UP),
    C(DOWN), C(MAINT), ...), the last health check's result, and all of it on one line.
  - The file also holds C(image_reference), which splits an image reference into registry,
    repository and tag or digest (reference).
options:
  _input:
    description: The CSV text.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Wait until every server passes its health check
  ansible.builtin.uri:
    url: http://127.0.0.1:18404/stats;csv
    return_content: true
  register: stats
  until: stats.content | tengen.ops.haproxy_servers | rejectattr('status', 'eq', 'UP') | list | length == 0
"""

RETURN = r"""
_value:
  description: One dict per server with keys backend, server, id (backend/server), status,
    check_status, weight, sessions (current sessions) and line.
  type: list
  elements: dict
"""


def haproxy_servers(text: str) -> list[dict[str, Any]]:
    rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
    return [
        {
            "backend": row["pxname"],
            "server": row["svname"],
            "status": row["status"],
            "check_status": row.get("check_status", ""),
            "id": f"{row['pxname']}/{row['svname']}",
            "weight": int(row.get("weight") or 0),
            "sessions": int(row.get("scur") or 0),
            "line": f"{row['pxname']}/{row['svname']} {row['status']} {row.get('check_status', '')}".strip(),
        }
        for row in rows
        if row.get("svname") not in ("FRONTEND", "BACKEND", None)
    ]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"haproxy_servers": haproxy_servers, "image_reference": image_reference}
