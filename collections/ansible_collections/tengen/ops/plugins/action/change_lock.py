"""Action: the controller side of tengen.ops.change_lock (who this run is, waiting, dead holders)."""

from __future__ import annotations

import getpass
import os
import socket
import time
from datetime import UTC, datetime
from typing import Any

from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

POLL_SECONDS = 2.0


def process_start(pid: int) -> str | None:
    """The start time of a process in clock ticks since boot (/proc), or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else fields[19]  # a zombie has ended, only not been reaped


def run_record(pid: int, controller: str, user: str) -> dict[str, Any]:
    """Who a run is: its token names the process and when it started, so a reused pid differs."""
    return {
        "token": f"{user}@{controller}:{pid}:{process_start(pid) or 0}",
        "user": user,
        "controller": controller,
        "pid": pid,
    }


def this_run() -> dict[str, Any]:
    """The ansible-playbook process of this run: task workers are forked from it."""
    return run_record(os.getppid(), socket.gethostname(), getpass.getuser())


def run_is_dead(holder: dict[str, Any], me: dict[str, Any]) -> bool:
    """True only when the holder's run was on this controller and its process is gone (or reused)."""
    if holder.get("controller") != me["controller"] or not isinstance(holder.get("pid"), int):
        return False
    started = process_start(holder["pid"])
    return started is None or not str(holder.get("token", "")).endswith(f":{holder['pid']}:{started}")


def describe(holder: dict[str, Any]) -> str:
    who = f"{holder.get('user', '?')}@{holder.get('controller', '?')} (process {holder.get('pid', '?')})"
    return f"{holder.get('playbook') or 'a run'} by {who} since {holder.get('since', '?')}"


class ActionModule(ActionBase):
    _supports_check_mode = True

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        me = this_run()
        wait = int(args.get("wait", 0))
        break_lock = boolean(args.get("break_lock", False), strict=False)
        holder = {
            **me,
            "playbook": args.get("playbook", ""),
            "since": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        deadline = time.monotonic() + wait
        take_over = None
        warnings: list[str] = []
        while True:
            module_args = {**args, "token": me["token"], "holder": holder}
            if take_over is not None:
                module_args["take_over"] = take_over
            answer = self._execute_module(
                "tengen.ops.change_lock", module_args=module_args, task_vars=task_vars
            )
            if answer.get("failed") or answer.get("acquired") or args.get("state", "present") != "present":
                break
            current = answer.get("holder") or {}
            if break_lock:
                warnings.append(f"change lock: broken as asked (break_lock), taken from {describe(current)}")
                take_over = current.get("token")
                continue
            if run_is_dead(current, me):
                warnings.append(
                    f"change lock: taken over from {describe(current)}, which is no longer running"
                )
                take_over = current.get("token")
                continue
            if time.monotonic() >= deadline:
                answer["failed"] = True
                host = (task_vars or {}).get("inventory_hostname", "the host")
                answer["msg"] = (
                    f"{host} is being changed by {describe(current)}. Wait for that run to end, "
                    "or, if it is dead, run again with -e tengen_lock_break=true."
                )
                break
            time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
        result.update(answer)
        if warnings:
            result.setdefault("warnings", []).extend(warnings)
        return result
