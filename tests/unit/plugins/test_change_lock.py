"""change_lock: one run at a time changes a host; a second waits or refuses naming the holder; the
lock of a dead run is taken over; another controller's lock is broken only when asked.

Real ansible-playbook runs on localhost (connection local), the lock file in a temporary folder.
"""

from __future__ import annotations

import getpass
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from ansible_collections.tengen.ops.plugins.action.change_lock import run_record

from tests.e2e.sandbox import ANSIBLE_BIN, ansible_env

PLAY = """
- name: A change that holds the lock
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Take the change lock
      tengen.ops.change_lock:
        path: "{{ lock }}"
        playbook: "{{ label }}"
        wait: "{{ wait | int }}"
        break_lock: "{{ tengen_lock_break | default(false) | bool }}"
    - name: Take it again (a role that locks inside a playbook that locked)
      tengen.ops.change_lock:
        path: "{{ lock }}"
        playbook: "{{ label }}"
    - name: Work for a while
      ansible.builtin.wait_for:
        timeout: "{{ hold | int }}"
      when: hold | int > 0
    - name: Give the change lock back
      tengen.ops.change_lock:
        path: "{{ lock }}"
        state: absent
"""


@pytest.fixture
def play(tmp_path: Path):
    playbook = tmp_path / "change.yml"
    playbook.write_text(PLAY)
    lock = tmp_path / "change.lock"

    def start(label: str, wait: int = 0, hold: int = 0, *extra: str, check: bool = False) -> subprocess.Popen:
        variables = {"lock": str(lock), "label": label, "wait": wait, "hold": hold}
        variables["ansible_python_interpreter"] = sys.executable  # not whatever pyenv's shims find
        cmd = [str(ANSIBLE_BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook)]
        cmd += ["-e", json.dumps(variables), *extra] + (["--check"] if check else [])
        return subprocess.Popen(
            cmd, env=ansible_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

    def run(label: str, wait: int = 0, hold: int = 0, *extra: str, check: bool = False) -> tuple[int, str]:
        proc = start(label, wait, hold, *extra, check=check)
        out, _ = proc.communicate(timeout=120)
        return proc.returncode, out

    return start, run, lock


def holder_record(pid: int, controller: str | None = None, playbook: str = "deploy.yml") -> dict:
    record = run_record(pid, controller or socket.gethostname(), getpass.getuser())
    return {**record, "playbook": playbook, "since": "2026-12-02T10:00:00Z"}


def test_a_free_lock_is_taken_and_given_back_without_reporting_a_change(play):
    _, run, lock = play
    rc, out = run("site.yml")
    assert rc == 0, out
    assert "changed=0" in out and "failed=0" in out
    assert lock.read_text() == "", "the lock was not given back"


def test_a_second_run_refuses_naming_the_holder_and_leaves_its_lock(play):
    _, run, lock = play
    with subprocess.Popen(["sleep", "60"]) as live:
        record = holder_record(live.pid)
        lock.write_text(json.dumps(record))
        try:
            rc, out = run("deploy.yml")
        finally:
            live.kill()
    assert rc != 0
    assert f"deploy.yml by {record['user']}@{record['controller']} (process {live.pid})" in out
    assert "since 2026-12-02T10:00:00Z" in out and "tengen_lock_break=true" in out
    assert json.loads(lock.read_text()) == record


def test_a_second_run_waits_for_the_first_to_end(play):
    _, run, lock = play
    with subprocess.Popen(["sleep", "3"]) as short:
        lock.write_text(json.dumps(holder_record(short.pid)))
        rc, out = run("deploy.yml", 60)
    assert rc == 0, out
    assert "no longer running" in out  # it waited until the holder's process had gone
    assert lock.read_text() == ""


def test_the_lock_of_a_dead_run_on_this_controller_is_taken_over(play):
    _, run, lock = play
    with subprocess.Popen(["true"]) as gone:
        pass
    lock.write_text(json.dumps(holder_record(gone.pid, playbook="site.yml")))
    rc, out = run("deploy.yml")
    assert rc == 0, out
    assert "taken over from site.yml" in out and "no longer running" in out


def test_another_controllers_lock_is_broken_only_when_asked(play):
    _, run, lock = play
    record = holder_record(1, controller="ops-laptop.example.org")
    lock.write_text(json.dumps(record))
    rc, out = run("deploy.yml")
    assert rc != 0 and "deploy.yml by" in out and "ops-laptop.example.org" in out
    assert json.loads(lock.read_text()) == record
    rc, out = run("deploy.yml", 0, 0, "-e", "tengen_lock_break=true")
    assert rc == 0, out
    assert "broken as asked" in out


def test_check_mode_reports_the_holder_and_writes_nothing(play):
    _, run, lock = play
    rc, out = run("site.yml", check=True)
    assert rc == 0, out
    assert not lock.exists()
    record = holder_record(1, controller="ops-laptop.example.org")
    lock.write_text(json.dumps(record))
    rc, out = run("site.yml", check=True)
    assert rc != 0 and "ops-laptop.example.org" in out
    assert json.loads(lock.read_text()) == record


def test_two_runs_at_once_one_holds_the_other_refuses_then_both_pass_when_waiting(play):
    start, _, lock = play
    first, second = start("deploy.yml", 0, 8), start("site.yml", 0, 8)
    outs = [p.communicate(timeout=120)[0] for p in (first, second)]
    codes = sorted(p.returncode for p in (first, second))
    assert codes[0] == 0 and codes[1] != 0, outs
    refused = outs[[first.returncode, second.returncode].index(codes[1])]
    assert "is being changed by" in refused
    assert lock.read_text() == ""
    first, second = start("deploy.yml", 60, 2), start("site.yml", 60, 2)
    outs = [p.communicate(timeout=120)[0] for p in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outs
    assert lock.read_text() == ""
