"""Scale-out advice: every decision boundary, the causes named, the trend projected, bad input refused.

The recorded weeks under tests/unit/data/scale-advice/ are figure sets of a 2-core, 4 GB VM; each
boundary test sets one figure exactly at its limit (stay) and just over it (the decision).
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible_collections.tengen.ops.plugins.module_utils import scale_advice as sa
from ansible_collections.tengen.ops.plugins.modules import scale_advice as module

REPO = Path(__file__).resolve().parents[4]
DATA = REPO / "tests/unit/data/scale-advice"
PLANS = [{"name": "small_3_0"}, {"name": "medium_3_0"}, {"name": "large_3_0"}]
LAYOUT = {"vm_cores": 2, "vm_memory_mb": 4096, "plan": "medium_3_0", "plans": PLANS}


def week(name: str = "quiet-week") -> list[dict]:
    return yaml.safe_load((DATA / f"{name}.yml").read_text())["samples"]


def with_figure(samples: list[dict], **values: float) -> list[dict]:
    """The window with these figures set to the same value in every sample (so their level is it)."""
    out = copy.deepcopy(samples)
    for s in out:
        s.update(values)
    return out


def caused_by(advice: dict) -> set[str]:
    return {c["figure"] for c in advice["causes"]}


def test_the_quiet_week_stays_with_headroom_on_every_figure() -> None:
    advice = sa.advise(week(), {}, LAYOUT)
    assert advice["decision"] == "stay"
    assert advice["causes"] == []
    assert advice["target"] == "the current VM (medium_3_0)"
    rows = {h["figure"]: h for h in advice["headroom"]}
    # 95th percentile of the queue wait over the week is its busiest six-hour figure, 0.4 s.
    assert rows["engine_queue_wait_p95"]["value"] == pytest.approx(0.4)
    assert rows["engine_queue_wait_p95"]["headroom_percent"] == pytest.approx(80.0)
    assert all(h["headroom_percent"] > 0 for h in advice["headroom"])
    # Free disk is a floor: 60 GB of 80 free (75 %), 20 % is the limit: 55 / 75 of it may go.
    assert rows["disk_free_percent"]["headroom_percent"] == pytest.approx(73.3)
    assert advice["soon"] == []
    assert advice["window"] == {"samples": 28, "start": 1795132800, "end": 1795716000, "days": 6.75}
    assert advice["summary"][0] == "Decision: stay: the current VM (medium_3_0)"


# figure(s) set in every sample, the limit they are set at, the decision just over it.
BOUNDARIES = [
    ("engine_queue_wait_p95", {"engine_queue_wait_p95": 2.0}, "engine_queue_wait_p95", 0.01, "engine_vm"),
    ("engine_rejections", {"engine_rejections": 1.0}, "engine_rejections", 0.5, "engine_vm"),
    ("websockets", {"websockets": 1500}, "websockets", 1, "ecs"),
    ("request_rate", {"request_rate": 600}, "request_rate", 1, "ecs"),
    ("write_rate", {"write_rate": 400}, "write_rate", 1, "ecs"),
    # One backend process on one core, 25 % headroom: 0.75 of a core.
    ("backend_cpu", {"backend_cpu": 0.75, "engine_cpu": 0.1}, "backend_cpu", 0.01, "ecs"),
    # Backend + engine on the 2-core VM, 25 % headroom: 1.5 cores.
    ("vm_cpu", {"backend_cpu": 0.5, "engine_cpu": 1.0}, "engine_cpu", 0.01, "bigger_vm"),
    # Backend + engine memory on 4096 MB, 20 % headroom: 3276.8 MB.
    (
        "vm_memory_mb",
        {"backend_memory_mb": 276.8, "engine_memory_mb": 3000},
        "engine_memory_mb",
        1,
        "bigger_vm",
    ),
    # 20 % of an 80 GB disk free: 16 GB; below it, a bigger plan (a bigger disk).
    ("disk_free_percent", {"disk_free_gb": 16, "disk_total_gb": 80}, "disk_free_gb", -0.1, "bigger_vm"),
    # Slow AI moves with a short queue: the engine starves beside the rest.
    ("move_round_trip_p95", {"move_round_trip_p95": 5.0}, "move_round_trip_p95", 0.1, "bigger_vm"),
]


@pytest.mark.parametrize(
    ("check", "at_limit", "nudge", "step", "decision"), BOUNDARIES, ids=[b[0] for b in BOUNDARIES]
)
def test_each_limit_is_a_boundary_and_names_its_figure(
    check: str, at_limit: dict, nudge: str, step: float, decision: str
) -> None:
    at = sa.advise(with_figure(week(), **at_limit), {}, LAYOUT)
    assert at["decision"] == "stay", at["summary"]
    over = with_figure(week(), **{**at_limit, nudge: at_limit[nudge] + step})
    advice = sa.advise(over, {}, LAYOUT)
    assert advice["decision"] == decision, advice["summary"]
    assert caused_by(advice) == {check}
    cause = advice["causes"][0]
    assert cause["points_to"] == decision
    assert check in cause["text"] and cause["threshold"] in cause["text"]
    assert [h["days_to_limit"] for h in advice["headroom"] if h["figure"] == check] == [0.0]


def test_the_engine_queue_comes_before_the_vm() -> None:
    # The engine is the wall and the VM's CPU is short too: the engine's own VM frees both.
    samples = with_figure(week(), engine_queue_wait_p95=3.0, move_round_trip_p95=6.0, engine_cpu=1.4)
    advice = sa.advise(samples, {}, LAYOUT)
    assert advice["decision"] == "engine_vm"
    assert caused_by(advice) == {"engine_queue_wait_p95", "move_round_trip_p95", "vm_cpu"}
    assert advice["target"] == "an engine VM beside the game VM (medium_3_0)"


def test_the_backend_process_limit_overrides_the_engine() -> None:
    samples = with_figure(week(), engine_queue_wait_p95=3.0, websockets=2000)
    advice = sa.advise(samples, {}, LAYOUT)
    assert advice["decision"] == "ecs"
    assert caused_by(advice) == {"engine_queue_wait_p95", "websockets"}


def test_more_backend_processes_raise_the_per_core_limits() -> None:
    samples = with_figure(week(), websockets=2000)
    advice = sa.advise(samples, {}, {**LAYOUT, "backend_processes": 2})
    assert advice["decision"] == "stay"
    assert [h["limit"] for h in advice["headroom"] if h["figure"] == "websockets"] == [3000]


def test_the_largest_plan_leaves_only_ecs() -> None:
    samples = with_figure(week(), engine_cpu=1.6)
    assert sa.advise(samples, {}, LAYOUT)["target"] == "the next VM plan (large_3_0)"
    advice = sa.advise(samples, {}, {**LAYOUT, "plan": "large_3_0"})
    assert advice["decision"] == "ecs"
    assert caused_by(advice) == {"vm_cpu", "plan"}


def test_an_engine_on_its_own_vm_leaves_the_game_vm_cpu_alone() -> None:
    layout = {**LAYOUT, "engine_vms": 1, "engine_vm_plan": "medium_3_0"}
    samples = with_figure(week(), engine_cpu=1.9, engine_memory_mb=3900)
    assert sa.advise(samples, {}, layout)["decision"] == "stay"
    # Slow AI moves then point at the engine's VM, which gets the next plan, then ECS.
    slow = with_figure(samples, move_round_trip_p95=6.0)
    advice = sa.advise(slow, {}, layout)
    assert (advice["decision"], advice["target"]) == (
        "engine_vm",
        "the engine VM on the next plan (large_3_0)",
    )
    advice = sa.advise(slow, {}, {**layout, "engine_vm_plan": "large_3_0"})
    assert advice["decision"] == "ecs"
    assert caused_by(advice) == {"move_round_trip_p95", "engine_vm_plan"}


def test_thresholds_move_the_boundary() -> None:
    samples = with_figure(week(), engine_queue_wait_p95=1.0)
    assert sa.advise(samples, {}, LAYOUT)["decision"] == "stay"
    advice = sa.advise(samples, {"engine_queue_wait_p95_s": 0.5}, LAYOUT)
    assert advice["decision"] == "engine_vm"
    assert advice["causes"][0]["limit"] == 0.5


def test_a_growing_queue_is_projected_before_it_is_reached() -> None:
    advice = sa.advise(week("engine-queue-growing"), {}, LAYOUT)
    assert advice["decision"] == "stay"
    soon = {h["figure"]: h for h in advice["soon"]}
    assert soon["engine_queue_wait_p95"]["points_to"] == "engine_vm"
    assert 0 < soon["engine_queue_wait_p95"]["days_to_limit"] < 7
    assert "Soon: engine_queue_wait_p95 reaches its limit" in "\n".join(advice["summary"])
    # The quiet week's flat figures are not projected as soon.
    assert sa.advise(week(), {}, LAYOUT)["soon"] == []


def test_days_to_limit_is_the_linear_fit() -> None:
    # websockets 100 on day 0, 200 on day 1, 300 on day 2: +100 a day, 1200 left to 1500: 12 days.
    base = week()[0]
    samples = [{**base, "time": base["time"] + d * 86400, "websockets": 100 + 100 * d} for d in range(3)]
    rows = {h["figure"]: h for h in sa.advise(samples, {}, LAYOUT)["headroom"]}
    assert rows["websockets"]["slope_per_day"] == pytest.approx(100)
    assert rows["websockets"]["days_to_limit"] == pytest.approx(12.0)
    # A window shorter than min_trend_days is not projected.
    short = [{**s, "time": base["time"] + i * 3600} for i, s in enumerate(samples)]
    rows = {h["figure"]: h for h in sa.advise(short, {}, LAYOUT)["headroom"]}
    assert rows["websockets"]["days_to_limit"] is None


def test_a_stale_backup_warns_without_scaling() -> None:
    advice = sa.advise(with_figure(week(), backup_age_hours=5), {}, LAYOUT)
    assert advice["decision"] == "stay"
    assert len(advice["notices"]) == 1 and "backup_age_hours 5 hours > 2" in advice["notices"][0]


def test_a_failed_scrape_leaves_a_gap_not_an_error() -> None:
    samples = week()
    del samples[3]["engine_queue_wait_p95"]
    samples[4]["websockets"] = None
    assert sa.advise(samples, {}, LAYOUT)["decision"] == "stay"


@pytest.mark.parametrize(
    ("samples", "thresholds", "layout", "message"),
    [
        ([], {}, LAYOUT, "the window is empty"),
        ({"time": 1}, {}, LAYOUT, "expected a list of samples"),
        (
            [{"time": 1, "players": 3}],
            {},
            LAYOUT,
            "figures missing from every sample: websockets, request_rate",
        ),
        ([{"players": 3}], {}, LAYOUT, "figures[0]: no time"),
        (
            None,
            {"engine_queue_wait_p95_s": 6},
            LAYOUT,
            "move_round_trip_p95_s (5) must be above engine_queue_wait_p95_s (6)",
        ),
        (None, {"write_rate": 700}, LAYOUT, "write_rate (700) is above requests_per_core (600)"),
        (None, {"horizon_days": 0.5}, LAYOUT, "horizon_days (0.5) is shorter than min_trend_days (1)"),
        (None, {"cpu_headroom": 1.2}, LAYOUT, "cpu_headroom: 1.2 must be from 0 to under 1"),
        (None, {"websockets_per_core": "many"}, LAYOUT, "websockets_per_core: 'many' is not a finite number"),
        (None, {"engine_queue_wait": 2}, LAYOUT, "unknown threshold 'engine_queue_wait'"),
        (None, {}, {"vm_cores": 2}, "layout vm_memory_mb: None must be a positive number"),
        (None, {}, {**LAYOUT, "plan": "huge"}, "layout plan: 'huge' is not one of the plans"),
        (None, {}, {**LAYOUT, "engine_vms": 1.5}, "layout engine_vms: 1.5 must be a whole number, 0 or more"),
        (
            None,
            {},
            {**LAYOUT, "backend_processes": 0},
            "layout backend_processes: 0 must be a whole number, 1",
        ),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(
    samples, thresholds: dict, layout: dict, message: str
) -> None:
    with pytest.raises(sa.AdviceError) as err:
        sa.advise(week() if samples is None else samples, thresholds, layout)
    assert message in str(err.value)


def test_a_bad_figure_names_its_sample() -> None:
    samples = week()
    samples[2]["disk_free_gb"] = "lots"
    samples[5]["websockets"] = -3
    samples[6]["cpu"] = 1
    with pytest.raises(sa.AdviceError) as err:
        sa.advise(samples, {}, LAYOUT)
    assert "figures[2].disk_free_gb: 'lots' is not a finite number" in str(err.value)
    assert "figures[5].websockets: -3 is not a possible value" in str(err.value)
    assert "figures[6]: unknown figure 'cpu'" in str(err.value)


def test_numeric_strings_are_taken_as_numbers() -> None:
    layout = {**LAYOUT, "vm_cores": "2", "vm_memory_mb": "4096", "engine_vms": "0"}
    advice = sa.advise(week(), {"engine_queue_wait_p95_s": "0.3"}, layout)
    assert advice["decision"] == "engine_vm"


def run_module(args: dict) -> tuple[int, dict]:
    payload = {"ANSIBLE_MODULE_ARGS": {**args, "_ansible_check_mode": True}}
    proc = subprocess.run(
        [sys.executable, module.__file__],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO / "collections")},
        check=False,
    )
    return proc.returncode, json.loads(proc.stdout)


def test_the_module_returns_the_advice_and_changes_nothing() -> None:
    rc, out = run_module({"samples": with_figure(week(), websockets=1600), "layout": LAYOUT})
    assert rc == 0 and out["changed"] is False
    assert out["decision"] == "ecs" and out["causes"][0]["figure"] == "websockets"


def test_the_module_fails_on_bad_input_with_the_reason() -> None:
    rc, out = run_module({"samples": [], "layout": LAYOUT})
    assert rc != 0 and out["failed"] is True
    assert out["msg"] == "Cannot advise: figures: the window is empty; collect at least one sample first"


def test_one_spike_in_the_window_is_not_a_load() -> None:
    # The level is the 95th percentile (nearest rank): of 28 samples, the 27th highest.
    samples = week()
    samples[10]["engine_queue_wait_p95"] = 9.0
    assert sa.advise(samples, {}, LAYOUT)["decision"] == "stay"
    samples[20]["engine_queue_wait_p95"] = 9.0
    assert sa.advise(samples, {}, LAYOUT)["decision"] == "engine_vm"


def test_players_and_backup_age_may_be_unknown() -> None:
    samples = [{k: v for k, v in s.items() if k not in ("players", "backup_age_hours")} for s in week()]
    advice = sa.advise(samples, {}, LAYOUT)
    assert advice["decision"] == "stay"
    assert "players" not in advice["figures"]
    assert advice["notices"] == [
        "backup_age_hours: no backup status in the window; are backups running? (docs/backups.md)"
    ]
