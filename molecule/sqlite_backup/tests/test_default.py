"""Verify: the timer fires on its own, a manual run makes a verified backup and updates the status,
the restore playbook brings back a deleted game while the stand-in backend is stopped and restarted,
and a restore whose controller is killed while the backend is stopped still ends serving."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from tests.e2e.sandbox import ANSIBLE_BIN, ansible_env  # noqa: E402
from tests.stack_checks import REPO, molecule_playbook  # noqa: E402

DB = "/var/lib/tengen/tengen.db"


def sql(host, query: str) -> str:
    return host.check_output(f"sqlite3 -cmd '.timeout 10000' {DB} \"{query}\"")


def status(host) -> dict:
    return json.loads(host.file("/var/lib/tengen-backup/status.json").content_string)


def test_the_timer_is_active_and_scheduled(host):
    timer = host.service("tengen-backup.timer")
    assert timer.is_enabled and timer.is_running
    assert host.file("/etc/tengen-backup/backup.env").mode == 0o600


def test_the_timer_fires_by_itself_and_leaves_a_verified_backup(host):
    # converge made no backup; the 20-second schedule of this scenario must produce one
    deadline = time.monotonic() + 120
    while not host.file("/var/lib/tengen-backup/status.json").exists:
        assert time.monotonic() < deadline, "the timer did not fire within 2 minutes"
        time.sleep(2)
    state = status(host)
    assert state["last_result"] == "ok", state
    assert host.file(state["location"]).exists
    journal = host.check_output("journalctl -u tengen-backup.service --no-pager -o cat")
    assert "verified" in journal
    prom = host.file("/var/lib/prometheus/node-exporter/tengen_backup.prom").content_string
    assert "tengen_backup_last_run_ok 1" in prom and "tengen_backup_rpo_seconds 120" in prom


def test_a_triggered_run_makes_a_new_verified_backup_and_updates_the_status(host):
    before = status(host)
    time.sleep(1.1)  # backup names have one-second resolution
    host.run_expect([0], "systemctl start tengen-backup.service")
    after = status(host)
    assert after["last_attempt_epoch"] > before["last_attempt_epoch"]
    assert after["last_result"] == "ok" and after["name"] != before["name"]
    assert after["location"].endswith(".db.zst.enc")  # encrypted with the scenario's key
    verify = host.run("set -a; . /etc/tengen-backup/backup.env; tengen-backup verify")
    assert verify.rc == 0, verify.stderr
    assert host.run("tengen-backup status").rc == 0  # fresh: younger than the RPO


def test_restore_brings_back_a_deleted_game(host):
    # The scenario's 20-second timer would prune the backup taken here (one per hour is kept) and
    # make newer ones after the delete: pause it for the restore.
    host.run_expect([0], "systemctl stop tengen-backup.timer")
    try:
        host.run_expect([0], "systemctl start tengen-backup.service")
        newest = status(host)["name"]
        game = int(sql(host, "SELECT min(id) FROM games"))
        sql(host, f"DELETE FROM moves WHERE game_id = {game}; DELETE FROM games WHERE id = {game};")
        assert sql(host, f"SELECT count(*) FROM games WHERE id = {game}") == "0"

        run = molecule_playbook("restore.yml", f"sqlite_backup_restore_backup={newest}")
        assert f"Restored {newest}" in " ".join(run.stdout.split())

        assert sql(host, f"SELECT count(*) FROM games WHERE id = {game}") == "1"
        assert sql(host, "PRAGMA integrity_check") == "ok"
        assert host.service("tengen-writer.service").is_running  # the backend was started again
        kept = host.check_output("ls /var/lib/tengen").split()
        assert any(name.startswith("tengen.db.pre-restore-") for name in kept), kept
        assert host.file(DB).user == "tengen"  # the restored file took the replaced one's owner
        time.sleep(2)
        assert int(sql(host, "SELECT max(id) FROM games")) > game  # and the backend writes to it again
    finally:  # the later tests need the timer, whatever happened here
        host.run_expect([0], "systemctl start tengen-backup.timer")


HOLD = "/run/tengen-writer-hold"
# Holds the stand-in backend in "stopping" (its process gone, the stop not finished) while HOLD exists:
# the moment a restore has the backend stopped, made to last until the test has killed the controller.
HOLD_DROP_IN = f"""[Service]
ExecStopPost=/bin/sh -c 'while [ -e {HOLD} ]; do sleep 0.2; done'
"""


def wait_until(what: str, check, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.5)


def unit_state(host, unit: str) -> dict:
    out = host.check_output(f"systemctl show {unit} -p ActiveState -p MainPID")
    return dict(line.split("=", 1) for line in out.splitlines())


DROP_IN = "/run/systemd/system/tengen-writer.service.d/hold.conf"
PENDING = "/var/lib/tengen-backup/restore-pending.json"


def delete_a_game_after_a_backup(host) -> tuple[str, int]:
    """A fresh backup, then a game deleted live: restoring that backup brings the game back."""
    host.run_expect([0], "systemctl start tengen-backup.service")
    newest = status(host)["name"]
    game = int(sql(host, "SELECT min(id) FROM games"))
    sql(host, f"DELETE FROM moves WHERE game_id = {game}; DELETE FROM games WHERE id = {game};")
    return newest, game


class Restore:
    """restore.yml run in the background, the stand-in backend held in its stop while HOLD exists."""

    def __init__(self, host, backup: str, log_name: str) -> None:
        self.host = host
        host.run_expect(
            [0], f"mkdir -p {os.path.dirname(DROP_IN)} && cat > {DROP_IN} <<'EOF'\n{HOLD_DROP_IN}EOF"
        )
        host.run_expect([0], f"systemctl daemon-reload && touch {HOLD}")
        self.log_path = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/tmp")) / log_name
        self.log = open(self.log_path, "w")  # noqa: SIM115
        self.controller = subprocess.Popen(
            [
                str(ANSIBLE_BIN / "ansible-playbook"),
                *("-i", os.environ["MOLECULE_INVENTORY_FILE"]),
                str(REPO / "playbooks" / "restore.yml"),
                *("-e", f"sqlite_backup_restore_backup={backup}"),
            ],
            cwd=REPO,
            env=ansible_env(),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text()

    def wait_for_the_backend_stopped(self) -> None:
        def stopped() -> bool:
            if self.controller.poll() is not None:
                raise AssertionError(
                    f"the restore ended before it stopped the backend:\n{self.output()[-3000:]}"
                )
            return unit_state(self.host, "tengen-writer.service") == {
                "ActiveState": "deactivating",
                "MainPID": "0",
            }

        wait_until("the restore stopping the backend", stopped)
        # The backend is down and the restore under way: the timer is stopped and the restore recorded.
        assert not self.host.service("tengen-backup.timer").is_running
        assert self.host.file(PENDING).exists

    def release_the_backend(self) -> None:
        self.host.run_expect([0], f"rm -f {HOLD} {DROP_IN} && systemctl daemon-reload")

    def kill_the_controller(self) -> None:
        if self.controller.poll() is None:
            os.killpg(self.controller.pid, signal.SIGKILL)
        self.controller.wait()

    def close(self) -> None:
        self.kill_the_controller()
        self.log.close()
        self.release_the_backend()
        # A killed controller's change lock stays (an operator breaks it knowingly): free it here.
        self.host.run_expect([0], "rm -f /run/lock/tengen-change.lock")


def wait_for_the_backend_serving(host) -> None:
    wait_until(
        "the backend serving again",
        lambda: (
            host.service("tengen-writer.service").is_running
            and host.run("systemctl is-active tengen-restore.service").stdout.strip() != "active"
        ),
    )
    assert sql(host, "PRAGMA integrity_check") == "ok"
    assert host.file(DB).user == "tengen"
    assert host.service("tengen-backup.timer").is_running  # started again
    assert not host.file(PENDING).exists
    assert not host.check_output(
        "ls -A /var/lib/tengen | grep '^.tengen-restore' || true"
    )  # no staged copy left
    latest = int(sql(host, "SELECT max(id) FROM games"))
    wait_until("the backend writing again", lambda: int(sql(host, "SELECT max(id) FROM games")) > latest)


def replaced_copies(host) -> int:
    return int(host.check_output("ls /var/lib/tengen | grep -c '^tengen.db.pre-restore-[0-9TZ]*$' || true"))


def test_a_restore_whose_controller_dies_with_the_backend_stopped_ends_serving_by_itself(host):
    newest, game = delete_a_game_after_a_backup(host)
    restore = Restore(host, newest, "killed-controller.log")
    try:
        restore.wait_for_the_backend_stopped()
        restore.kill_the_controller()
    finally:
        restore.close()
    # Nothing from the controller from here on: the VM finishes the restore by itself.
    wait_for_the_backend_serving(host)
    assert sql(host, f"SELECT count(*) FROM games WHERE id = {game}") == "1"  # on the restored database
    # Two restores ran; the scenario keeps one replaced database (sqlite_backup_restore_keep_replaced).
    assert replaced_copies(host) == 1


def test_a_restore_unit_killed_with_the_backend_stopped_starts_it_again_on_the_old_database(host):
    newest, game = delete_a_game_after_a_backup(host)
    restore = Restore(host, newest, "killed-unit.log")
    try:
        restore.wait_for_the_backend_stopped()
        # The VM-side restore itself dies before its swap (as a kill, an OOM or its time bound would end it).
        host.run_expect([0], "systemctl kill --signal=SIGKILL tengen-restore.service")
        restore.release_the_backend()
        wait_until("the playbook failing", lambda: restore.controller.poll() is not None)
        assert restore.controller.returncode != 0
        assert "the restore unit left no result" in " ".join(restore.output().split())
    finally:
        restore.close()
    # Its ExecStopPost started the backend and the timer again, on the database that was in place.
    wait_for_the_backend_serving(host)
    assert sql(host, f"SELECT count(*) FROM games WHERE id = {game}") == "0"  # the old database: not restored
    assert replaced_copies(host) == 1  # nothing swapped


def test_the_drill_compares_the_latest_backup_with_the_live_database(host):
    run = molecule_playbook("restore-drill.yml")
    out = " ".join(run.stdout.split())
    assert "restores and verifies" in out and "games" in out
    assert not host.file("/var/tmp/tengen-restore-drill.db").exists
