"""plan.yml on the sandbox VM: the figures measured from the running stack, the advice and the cost.

Then the advice under the shared player load (tests/player_load.py, human and AI games through
Caddy, nginx and the backend): the timer's window holds an idle sample, on which the advice stays;
one more sample is taken while the load plays, and the advice leaves "stay" for the figure the
load drives over its limit. The figures of that sample are checked against the load's own counts,
taken just before and just after the sample's second reading.
"""

from __future__ import annotations

import json
import re
import ssl
import threading
import time
import urllib.request
from dataclasses import dataclass

import pytest

from tests.e2e.conftest import STATE_DIR
from tests.e2e.sandbox import Sandbox, run_playbook
from tests.player_load import PlayerLoad, Report
from tests.stack_checks import https_context

FIGURES = "/var/lib/tengen-figures"
HUMANS, AI_PLAYERS = 4, 1
# Each player has at most one request of its own in flight, and each AI player one reply due.
IN_FLIGHT = HUMANS + AI_PLAYERS


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
        # No window: a window kept by an earlier run of the timer would be read instead.
        run = run_playbook(
            sandbox.inventory,
            "playbooks/scale-out/plan.yml",
            "-e",
            "scale_advice_sample_seconds=5",
            "-e",
            "scale_advice_window_file=''",
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


@dataclass(frozen=True)
class Counts:
    """What the load had done at one moment."""

    requests: int
    writes: int  # games created and moves acknowledged
    ai_replies: int
    games: int
    websockets_open: int


def counts(load: PlayerLoad) -> Counts:
    report: Report = load.report
    games = len(load.games)
    return Counts(report.requests, games + report.moves, report.ai_replies, games, report.websockets_open)


def plan(sandbox: Sandbox, *args: str) -> str:
    run = sandbox.ansible_playbook("playbooks/scale-out/plan.yml", *args)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-4000:]
    return out


def headroom(out: str, figure: str) -> float:
    """The value the advice shows for a figure (its headroom line: "figure: value / limit unit, ...")."""
    found = re.findall(rf"^\s*- '  {figure}: ([0-9.e+-]+) / ", out, re.M)
    assert len(found) == 1, out[-4000:]
    return float(found[0])


def test_the_window_leaves_stay_under_the_player_load(sandbox: Sandbox) -> None:
    # A yearly schedule: the timer does not fire on its own during the test.
    never = ("-e", json.dumps({"scale_figures_schedule": "*-01-01 00:00:00"}))
    first = sandbox.ansible_playbook("playbooks/scale-out/figures.yml", *never)
    assert first.returncode == 0, (first.stdout + first.stderr)[-4000:]
    second = sandbox.ansible_playbook("playbooks/scale-out/figures.yml", *never)
    assert re.search(r"changed=0 +unreachable=0 +failed=0", second.stdout), second.stdout[-3000:]
    assert sandbox.exec("systemctl", "is-enabled", "tengen-scale-figures.timer").stdout.strip() == b"enabled"
    # Two runs of the timer's service on an empty window: the first keeps a reading, the second
    # records a sample of the idle stack.
    sandbox.exec("rm", "-f", f"{FIGURES}/window.jsonl", f"{FIGURES}/last-reading.json")
    for _ in range(2):
        sandbox.exec("systemctl", "start", "tengen-scale-figures.service")
    lines = sandbox.exec("cat", f"{FIGURES}/window.jsonl").stdout.decode().splitlines()
    assert len(lines) == 1
    idle = json.loads(lines[0])
    assert idle["engine_memory_mb"] > 10 and idle["disk_total_gb"] > 0
    # The next sample starts at this reading, before the load.
    start = json.loads(sandbox.exec("cat", f"{FIGURES}/last-reading.json").stdout)["time"]

    # The limit the load crosses: one WebSocket fewer than the watchers the load opens at first
    # (one per game, each player starts one), over those already open. The disk is the host's,
    # shared with other work: out of this test's reach, so its limit is out of the way.
    games_at_first = HUMANS + AI_PLAYERS
    limit = int(idle["websockets"]) + games_at_first - 1
    thresholds = (
        "-e",
        json.dumps({"scale_advice_websockets_per_core": limit, "scale_advice_disk_free_min_percent": 1}),
    )
    calm = plan(sandbox, *thresholds)
    assert "Window: 1 samples over 0 days" in calm
    assert "measure | Measure the load" not in calm  # plan.yml advises from the window
    assert "Decision: stay: the current VM (medium_3_0)" in calm, calm[-4000:]

    base = f"https://localhost:{sandbox.https_port}"
    ctx = https_context(str(STATE_DIR / "caddy-root.crt"))
    with PlayerLoad(base, ctx, humans=HUMANS, ai_players=AI_PLAYERS) as load:
        deadline = time.monotonic() + 120  # a guard against a stack that never answers, not a figure
        while time.monotonic() < deadline:
            now = counts(load)
            if now.websockets_open >= games_at_first and now.ai_replies >= 2 and now.writes >= 4 * HUMANS:
                break
            time.sleep(0.2)
        before = counts(load)
        sandbox.exec("systemctl", "start", "tengen-scale-figures.service")
        after = counts(load)
    report = load.report
    assert report.clean, f"{report.summary()}: {report.details()}"
    assert report.reconnects == 0  # every watcher stayed open: the backend counted none as a request
    assert before.websockets_open >= games_at_first and before.ai_replies >= 2, report.summary()

    lines = sandbox.exec("cat", f"{FIGURES}/window.jsonl").stdout.decode().splitlines()
    assert len(lines) == 2
    loaded = json.loads(lines[1])
    seconds = loaded["time"] - start
    # The backend counts a request when it answers; the load counts it when it sends it, and
    # began after the first reading. So the backend's count is at most what the load had sent
    # by the end of the second reading, and at least what it had sent before it, less those
    # still in flight.
    requests = round(loaded["request_rate"] * seconds)
    assert before.requests - IN_FLIGHT <= requests <= after.requests, (requests, before, after)
    # Writes: the games created and moves acknowledged (the load counts them once answered, the
    # backend just before), and the engine's moves (each AI reply the load saw is one stored; an
    # AI player has at most one more under way).
    writes = round(loaded["write_rate"] * seconds)
    low = before.writes + before.ai_replies
    high = after.writes + IN_FLIGHT + after.ai_replies + AI_PLAYERS
    assert low <= writes <= high, (writes, before, after)
    # WebSockets: open at the second reading. Every watcher the load had connected was open on the
    # server; at most one per game created was, on top of those open before the load.
    websockets = loaded["websockets"] - idle["websockets"]
    assert before.websockets_open <= websockets <= after.games, (loaded["websockets"], before, after)
    assert loaded["move_round_trip_p95"] > 0 and loaded["engine_cpu"] > 0  # the AI games were played

    busy = plan(sandbox, *thresholds)
    assert "Window: 2 samples over 0 days" in busy
    decision = re.search(r"Decision: (\w+): ", busy)
    assert decision and decision.group(1) == "ecs", busy[-4000:]
    # The one cause: the WebSockets the load opened, as measured.
    causes = re.findall(
        r"^\s*- '  (\w+) \S+ .* -> (\w+)'$", busy.split("Because:", 1)[1].split("Headroom", 1)[0], re.M
    )
    assert causes == [("websockets", "ecs")], busy[-4000:]
    assert f"websockets {loaded['websockets']:g} WebSockets > {limit:g} (websockets_per_core) -> ecs" in busy
    # The figures the advice reports are the loaded sample's: the window's highest of each.
    for figure in ("websockets", "request_rate", "write_rate"):
        # The advice rounds to 4 decimal places and prints 6 significant digits.
        assert headroom(busy, figure) == pytest.approx(max(idle[figure], loaded[figure]), rel=1e-5, abs=1e-4)
    print(
        f"\nload over {seconds:.1f} s: {report.summary()}; sample: {loaded['request_rate']:g} requests/s "
        f"({requests}), {loaded['write_rate']:g} writes/s ({writes}), {loaded['websockets']:g} WebSockets, "
        f"move round trip p95 {loaded['move_round_trip_p95']:g} s, engine queue wait p95 "
        f"{loaded['engine_queue_wait_p95']:g} s; load before/after the reading: {before} / {after}"
    )
