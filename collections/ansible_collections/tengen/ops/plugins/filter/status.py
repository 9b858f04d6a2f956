"""Filter for the status role: the lines an operator reads, from what tengen.ops.stack_status read."""

from __future__ import annotations

from typing import Any

from ansible_collections.tengen.ops.plugins.module_utils.stack_status import render

DOCUMENTATION = r"""
name: status_lines
short_description: The deployment at a glance, one line per item, each problem on a line of its own
version_added: 0.1.0
description:
  - Makes the status lines from the result of C(tengen.ops.stack_status) - each Compose service and
    its health, the live release and the kept ones, the certificate's expiry, the newest backup's
    age and the offsite copies, the disks, maintenance mode, the scale advice with its figures, and
    the last audit entries.
  - Each problem is named on a line of its own that starts with C(PROBLEM), right after its item
    (a stopped or unhealthy container, no release, a certificate expired or past Caddy's renewal, a
    backup or an upload older than the limit, a failed backup, a disk over its limit). The last line
    counts them.
options:
  _input:
    description: The C(status) that C(tengen.ops.stack_status) returns.
    type: dict
    required: true
  thresholds:
    description:
      - C(backup_max_age_hours), C(disk_max_used_percent), C(tls_min_remaining_share) (share of the
        certificate's lifetime under which it is a problem) and C(offsite_expected) (a bucket is set).
    type: dict
    required: true
  scale:
    description: The result of C(tengen.ops.scale_advice) (decision, target, causes, headroom), or none.
    type: dict
"""

EXAMPLES = r"""
- name: Show the status
  ansible.builtin.debug:
    msg: "{{ (state.status | tengen.ops.status_lines(thresholds, advice)).lines | join('\n') }}"
"""

RETURN = r"""
_value:
  description: C(lines) (every line, in order) and C(problems) (the PROBLEM lines alone).
  type: dict
"""


def status_lines(
    status: dict[str, Any], thresholds: dict[str, Any], scale: dict[str, Any] | None = None
) -> dict[str, Any]:
    return render(status, thresholds, scale)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"status_lines": status_lines}
