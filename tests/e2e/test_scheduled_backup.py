"""scripts/scheduled-backup, as a controller's cron runs it: backup.yml through ansible-runner, each
run's artifacts kept, old runs pruned, the playbook's exit status passed on."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.conftest import REPO
from tests.e2e.sandbox import Sandbox


def scheduled_backup(inventory: Path, artifacts: Path, keep: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "TENGEN_BACKUP_ARTIFACTS": str(artifacts), "TENGEN_BACKUP_KEEP_ARTIFACTS": str(keep)}
    return subprocess.run(
        [str(REPO / "scripts" / "scheduled-backup"), "-i", str(inventory)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def backups_on_the_vm(sandbox: Sandbox) -> set[str]:
    # One manifest per backup, whatever its compression.
    listing = sandbox.exec("find", "/var/backups/tengen", "-maxdepth", "1", "-name", "*.json")
    return set(listing.stdout.decode().split())


def test_a_scheduled_backup_runs_keeps_its_artifacts_and_passes_a_failure_on(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    artifacts = tmp_path / "artifacts"
    before = backups_on_the_vm(sandbox)

    run = scheduled_backup(sandbox.inventory, artifacts, keep=1)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert " successful (rc 0)" in run.stdout, run.stdout
    assert backups_on_the_vm(sandbox) - before, "the scheduled run made no new backup on the VM"
    [first] = sorted(artifacts.glob("backup-*"))
    assert (first / "status").read_text().strip() == "successful"
    events = [json.loads(path.read_text()) for path in (first / "job_events").glob("*.json")]
    assert any(event.get("event") == "playbook_on_stats" for event in events)

    # A VM that cannot be reached: the run fails with the playbook's status, and its artifacts
    # replace the older run's (keep=1).
    unreachable = tmp_path / "inventory.yml"
    unreachable.write_text(
        json.dumps({"vm": {"hosts": {"gone": {"ansible_host": "127.0.0.1", "ansible_port": 9}}}}) + "\n"
    )
    failed = scheduled_backup(unreachable, artifacts, keep=1)
    assert failed.returncode != 0, failed.stdout
    assert " failed (rc " in failed.stdout, failed.stdout
    [second] = sorted(artifacts.glob("backup-*"))
    assert second != first
    assert (second / "status").read_text().strip() == "failed"
