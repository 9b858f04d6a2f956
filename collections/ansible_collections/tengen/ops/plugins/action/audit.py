"""Action: the controller side of tengen.ops.audit (who runs this playbook, from where, as whom)."""

from __future__ import annotations

import getpass
import socket
from typing import Any

from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    _supports_check_mode = True

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = dict(self._task.args)
        # The person at the controller and the login on the host: with become, both differ from root.
        args.setdefault("controller_user", getpass.getuser())
        args.setdefault("controller", socket.gethostname())
        # remote_user is the templated ansible_user; a local connection has none: the controller's user.
        args.setdefault("ansible_user", str(self._play_context.remote_user or getpass.getuser()))
        result.update(self._execute_module("tengen.ops.audit", module_args=args, task_vars=task_vars))
        return result
