"""status.yml, the audit trail and `make logs` on the sandbox VM.

The healthy stack shows no PROBLEM line; a stopped engine, a backup three days old (its status
file set back, the backup timer stopped meanwhile) and a nearly full filesystem (a small tmpfs
filled to 97 %) are each named on a line of their own; everything is put back afterwards, the
engine started and healthy again. Maintenance switched on and off leaves two audit entries that
status shows. scripts/logs reads a service's logs over ssh and refuses an unknown service.
"""

from __future__ import annotations

import getpass
import json
import re
import socket
import subprocess

from tests.conftest import REPO
from tests.e2e.sandbox import Sandbox, ansible_env

SMALL_FS = "/mnt/tengen-status-small"
BACKUP_STATUS = "/var/lib/tengen-backup/status.json"
COMPOSE = ["docker", "compose", "--project-directory", "/opt/tengen", "-p", "tengen"]


def status(sandbox: Sandbox, *args: str) -> list[str]:
    """The lines status.yml shows; the run must pass and change nothing."""
    run = sandbox.ansible_playbook("playbooks/status.yml", *args)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-4000:]
    assert re.search(r"changed=0 +unreachable=0 +failed=0", out), out[-3000:]
    block = out.split("    msg: |-\n", 1)[1]
    lines = []
    for line in block.splitlines():
        if not line.startswith("        "):
            break
        lines.append(line.strip())
    return lines


def problems(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("PROBLEM")]


def test_status_names_each_problem_and_the_healthy_stack_has_none(sandbox: Sandbox) -> None:
    # No backup run may write the status file while the test shows an old one: the timer stops,
    # then one run is started, which also waits for a run already under way. A VM just built has
    # no backup until its timer first fires; this one is it.
    sandbox.exec("systemctl", "stop", "tengen-backup.timer")
    try:
        sandbox.exec("systemctl", "start", "tengen-backup.service")
        healthy = status(sandbox, "--check")
        original = sandbox.exec("cat", BACKUP_STATUS).stdout
        old = json.loads(original)
        old["last_success_epoch"] -= 3 * 86400
        try:
            sandbox.exec("sh", "-c", f"cat > {BACKUP_STATUS}", input=json.dumps(old).encode())
            sandbox.exec("mkdir", "-p", SMALL_FS)
            sandbox.exec("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", SMALL_FS)
            sandbox.exec("fallocate", "-l", "3900k", f"{SMALL_FS}/filler")
            sandbox.exec("docker", "stop", "tengen-engine-1")
            disks = json.dumps({"status_disk_paths": ["/var/lib/tengen", SMALL_FS]})
            broken = status(sandbox, "-e", "status_backup_max_age_hours=24", "-e", disks)
        finally:
            sandbox.exec(*COMPOSE, "up", "--detach", "--no-recreate", "--wait", "engine", check=False)
            sandbox.exec("sh", "-c", f"cat > {BACKUP_STATUS}", input=original)
            sandbox.exec("umount", SMALL_FS, check=False)
            sandbox.exec("rmdir", SMALL_FS, check=False)
    finally:
        sandbox.exec("systemctl", "start", "tengen-backup.timer")

    assert problems(healthy) == [], "\n".join(healthy)
    assert healthy[-1] == "OK: no problems"
    for service in ("engine", "nginx", "caddy"):
        assert any(line.startswith(f"service {service}: running, healthy") for line in healthy), healthy
    assert any(
        re.match(r"release live: [0-9a-f]{12} \(backend slot (blue|green)\)", line) for line in healthy
    )
    assert any(
        re.match(r"tls localhost: certificate valid until .* left of 12h \(local\)", line) for line in healthy
    )
    assert any(re.match(r"backup: newest is \d+[smh] old \(limit 2h\), \d+ local", line) for line in healthy)
    assert any(re.match(r"disk /var/lib/tengen.*: \d+% used", line) for line in healthy)
    assert any(line.startswith("scale advice: ") for line in healthy), healthy

    found = problems(broken)
    assert "PROBLEM engine: container stopped (exit code 0)" in found, broken
    assert "PROBLEM backup: newest is 3d old (limit 1d)" in found, broken
    assert any(re.fullmatch(rf"PROBLEM disk: 9\d% used on {SMALL_FS} \(limit 90%\)", p) for p in found), (
        broken
    )
    assert len(found) == 3 and broken[-1] == "3 problems", broken
    # Put back: the engine serves again, as later tests expect.
    health = sandbox.exec("docker", "inspect", "--format", "{{.State.Health.Status}}", "tengen-engine-1")
    assert health.stdout.strip() == b"healthy"


def test_maintenance_switches_show_in_the_audit_trail(sandbox: Sandbox) -> None:
    on = sandbox.ansible_playbook(
        "playbooks/maintenance.yml", "-e", "state=on", "-e", "reason='status shows the audit trail'"
    )
    assert on.returncode == 0, (on.stdout + on.stderr)[-3000:]
    off = sandbox.ansible_playbook("playbooks/maintenance.yml", "-e", "state=off")
    assert off.returncode == 0, (off.stdout + off.stderr)[-3000:]
    lines = status(sandbox, "-e", "status_scale=false", "-e", "status_audit_entries=2")
    audit = [line for line in lines if line.startswith("audit ")]
    who = rf"{re.escape(getpass.getuser())}@{re.escape(socket.gethostname())} as deploy"
    assert re.fullmatch(
        rf"audit \S+Z {who}: maintenance on ok release [0-9a-f]{{12}}: status shows the audit trail", audit[0]
    ), audit
    assert re.fullmatch(rf"audit \S+Z {who}: maintenance off ok release [0-9a-f]{{12}}", audit[1]), audit
    assert "maintenance: off" in lines
    mode = sandbox.exec("stat", "-c", "%U %G %a", "/var/log/tengen/audit.jsonl").stdout.decode().split()
    assert mode == ["root", "root", "640"]


def test_logs_reads_a_service_and_refuses_an_unknown_one(sandbox: Sandbox) -> None:
    def logs(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(REPO / "scripts" / "logs"), "-i", str(sandbox.inventory), *args],
            cwd=REPO,
            env=ansible_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    backend = logs("--service", "backend", "--since", "24h")
    assert backend.returncode == 0, backend.stderr[-2000:]
    assert re.search(r"backend-(blue|green)-1 +\| \S+Z .*\"msg\": \"starting\"", backend.stdout), (
        backend.stdout[-2000:]
    )
    assert "engine-1" not in backend.stdout
    unknown = logs("--service", "katago")
    assert unknown.returncode == 2
    assert "SERVICE=katago is not a service of the stack on sandbox; choose one of: " in unknown.stderr
    assert "engine" in unknown.stderr and "caddy" in unknown.stderr
