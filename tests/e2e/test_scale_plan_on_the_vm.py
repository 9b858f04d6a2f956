"""plan.yml on the sandbox VM: the figures measured from the running stack, the advice and the cost."""

from __future__ import annotations

import json
import re
import ssl
import threading
import urllib.request

from tests.e2e.sandbox import Sandbox, run_playbook


def test_plan_measures_the_running_stack(sandbox: Sandbox) -> None:
    stop = threading.Event()
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the sandbox's own CA; only the load matters here

    def load() -> None:
        # Games created over HTTPS while the VM is measured: requests and writes to count.
        while not stop.is_set():
            req = urllib.request.Request(
                f"https://localhost:{sandbox.https_port}/api/games",
                data=json.dumps({"size": 9, "opponent": "human"}).encode(),
                headers={"Content-Type": "application/json"},
            )
            try:
                urllib.request.urlopen(req, timeout=10, context=context).read()
            except OSError:
                pass  # the rate limit of nginx may refuse some; the count needs only a few
            stop.wait(0.2)

    worker = threading.Thread(target=load)
    worker.start()
    try:
        run = run_playbook(
            sandbox.inventory, "playbooks/scale-out/plan.yml", "-e", "scale_advice_sample_seconds=5"
        )
    finally:
        stop.set()
        worker.join(30)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-4000:]
    assert re.search(r"changed=0 +unreachable=0 +failed=0", out)
    # The measured sample, as the play shows it: one "figure: value" line each.
    sample = {k: float(v) for k, v in re.findall(r"^ +([a-z_0-9]+): ([0-9.e+-]+)$", out, re.M)}
    assert sample["request_rate"] > 0 and sample["write_rate"] > 0
    assert sample["backend_memory_mb"] > 10 and sample["engine_memory_mb"] > 10
    assert 0 < sample["disk_free_gb"] < sample["disk_total_gb"]
    assert sample["db_size_mb"] > 0
    assert re.search(r"Decision: (stay|bigger_vm|engine_vm|ecs): ", out)
    assert "ECS layout" in out


def test_the_timer_keeps_a_window_that_plan_reads(sandbox: Sandbox) -> None:
    # A yearly schedule: the timer does not fire on its own during the test.
    never = ("-e", json.dumps({"scale_figures_schedule": "*-01-01 00:00:00"}))
    first = sandbox.ansible_playbook("playbooks/scale-out/figures.yml", *never)
    assert first.returncode == 0, (first.stdout + first.stderr)[-4000:]
    second = sandbox.ansible_playbook("playbooks/scale-out/figures.yml", *never)
    assert re.search(r"changed=0 +unreachable=0 +failed=0", second.stdout), second.stdout[-3000:]
    assert sandbox.exec("systemctl", "is-enabled", "tengen-scale-figures.timer").stdout.strip() == b"enabled"
    # Two runs of the timer's service: the first keeps a reading, the second records a sample.
    for _ in range(2):
        sandbox.exec("systemctl", "start", "tengen-scale-figures.service")
    lines = sandbox.exec("cat", "/var/lib/tengen-figures/window.jsonl").stdout.decode().splitlines()
    assert len(lines) == 1
    sample = json.loads(lines[0])
    assert sample["engine_memory_mb"] > 10 and sample["disk_total_gb"] > 0
    # plan.yml now advises from the window instead of measuring.
    run = sandbox.ansible_playbook("playbooks/scale-out/plan.yml")
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-4000:]
    assert "Window: 1 samples over 0 days" in out
    assert "measure | Measure the load" not in out
