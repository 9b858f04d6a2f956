#!/usr/bin/python
"""Advise when to scale out, from the service's figures over a window."""

from __future__ import annotations

DOCUMENTATION = r"""
module: scale_advice
short_description: Advise when to scale out, from the service's figures over a window
description:
  - Reads samples of the service's figures over a window (players, WebSockets, request rate,
    backend and engine CPU and memory, engine queue wait and rejections, AI move round trip,
    database size and write rate, free disk, backup age) and compares them with thresholds.
  - "Decides among C(stay), C(bigger_vm) (the next VM plan), C(engine_vm) (give the engine its
    own VM) and C(ecs) (the AWS layout), reading the engine's queue first, and names the figures
    that caused the decision with their values and limits."
  - Projects each figure's trend over the window (least squares) to the days left before it
    reaches its limit.
  - Fails with a message naming the fault on an empty window, a figure missing from every sample,
    or thresholds that are out of range or contradict each other. Changes nothing.
version_added: 0.1.0
author: tengen maintainers
options:
  samples:
    description:
      - The window, a list of samples. Each has C(time) (seconds since the epoch) and the figures
        C(players), C(websockets), C(request_rate), C(backend_cpu), C(engine_cpu) (cores busy),
        C(backend_memory_mb), C(engine_memory_mb), C(engine_queue_wait_p95), C(move_round_trip_p95)
        (seconds), C(engine_rejections) (per minute), C(db_size_mb), C(write_rate) (per second),
        C(disk_free_gb), C(disk_total_gb), C(backup_age_hours).
      - A sample may lack a figure (a failed scrape); every figure must be in at least one sample.
    type: list
    elements: dict
    required: true
  thresholds:
    description:
      - The limits, by name; missing ones take their defaults (see docs/scale-out.md and the
        C(scale_advice) role's defaults).
    type: dict
    default: {}
  layout:
    description:
      - What runs now. C(vm_cores) and C(vm_memory_mb) (required), C(plan) and C(plans) (the VM
        plans in order of size, each with a C(name)), C(engine_vms) (engine VMs beside the game VM),
        C(engine_vm_plan), C(backend_processes).
    type: dict
    required: true
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Advise from the figures of the last week
  tengen.ops.scale_advice:
    samples: "{{ scale_advice_samples }}"
    thresholds:
      engine_queue_wait_p95_s: 2
      cpu_headroom: 0.25
    layout:
      vm_cores: 2
      vm_memory_mb: 4096
      plan: medium_3_0
      plans: [{name: small_3_0}, {name: medium_3_0}, {name: large_3_0}]
  register: advice
"""

RETURN = r"""
decision:
  description: One of stay, bigger_vm, engine_vm, ecs.
  returned: always
  type: str
  sample: engine_vm
target:
  description: What the decision means here (the next plan, an engine VM, the ECS layout).
  returned: always
  type: str
causes:
  description:
    - The figures over their limits, each with value, limit, unit, threshold and the decision it calls for.
  returned: always
  type: list
  elements: dict
headroom:
  description: Every checked figure with its value, limit, share left, trend per day and days to the limit.
  returned: always
  type: list
  elements: dict
soon:
  description: The headroom entries whose limit the trend reaches within horizon_days.
  returned: always
  type: list
  elements: dict
notices:
  description: Findings that are no scaling step (a stale backup).
  returned: always
  type: list
  elements: str
figures:
  description:
    - Each figure's level over the window (95th percentile; 5th for free disk; last for sizes and ages).
  returned: always
  type: dict
window:
  description: Number of samples, first and last time, length in days.
  returned: always
  type: dict
summary:
  description: The advice as lines for an operator.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.tengen.ops.plugins.module_utils.scale_advice import AdviceError, advise  # noqa: E402


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "samples": {"type": "list", "elements": "dict", "required": True},
            "thresholds": {"type": "dict", "default": {}},
            "layout": {"type": "dict", "required": True},
        },
        supports_check_mode=True,
    )
    try:
        advice = advise(module.params["samples"], module.params["thresholds"], module.params["layout"])
    except AdviceError as exc:
        module.fail_json(msg=f"Cannot advise: {exc}")
    module.exit_json(changed=False, **advice)


if __name__ == "__main__":
    main()
