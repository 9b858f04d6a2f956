"""When to scale out: advice from the service's figures over a window, with the causes and headroom.

Shared by the scale_advice module and its unit tests; pure Python, no Ansible import.

The service on one VM meets its walls in this order (measured on a 2-core VM): the engine first
(KataGo b6c96 at 100 visits on 19x19 plays about 3 moves/s for the whole VM), then the backend
process (one asyncio process, so one core: about 800 moves/s and 2,000 WebSockets with broadcast
p99 < 100 ms), then the VM's CPU, memory and disk. The advice therefore reads the engine's queue
first:

- ``ecs``: the backend process or SQLite is at its limit (WebSockets, requests, its CPU core,
  write rate). Only replicas behind a load balancer with PostgreSQL and Redis go further, whatever
  the engine does; also when a bigger VM is asked for and there is no bigger plan.
- ``engine_vm``: the engine's queue wait or rejections are over their limits: give the engine its
  own VM (or its VM the next plan). Moving it also frees the game VM's CPU and memory.
- ``bigger_vm``: the VM's CPU, memory or disk headroom is gone, or AI moves are slow with no
  queue to blame (the engine is starved of CPU beside the rest): the next VM plan.
- ``stay``: every figure is within its limit. The headroom says how long that lasts at the trend.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DECISIONS = ("stay", "bigger_vm", "engine_vm", "ecs")

# figure -> (unit, how the window is summed up: "high" = 95th percentile, "low" = 5th, "last").
FIGURES: dict[str, tuple[str, str]] = {
    "players": ("players", "high"),
    "websockets": ("WebSockets", "high"),
    "request_rate": ("requests/s", "high"),
    "backend_cpu": ("cores", "high"),
    "engine_cpu": ("cores", "high"),
    "backend_memory_mb": ("MB", "high"),
    "engine_memory_mb": ("MB", "high"),
    "engine_queue_wait_p95": ("s", "high"),
    "engine_rejections": ("per minute", "high"),
    "move_round_trip_p95": ("s", "high"),
    "db_size_mb": ("MB", "last"),
    "write_rate": ("writes/s", "high"),
    "disk_free_gb": ("GB", "low"),
    "disk_total_gb": ("GB", "last"),
    "backup_age_hours": ("hours", "last"),
}

# Figures a VM may not have: no player count is kept, and a VM may have no backups yet.
OPTIONAL = ("players", "backup_age_hours")

# The thresholds, their defaults (the scale_advice role's defaults carry the same values) and why.
THRESHOLDS: dict[str, tuple[float, str]] = {
    "engine_queue_wait_p95_s": (2.0, "engine queue wait p95 above this (s): the engine is the wall"),
    "engine_rejections_per_min": (1.0, "engine requests refused with a full queue, per minute"),
    "move_round_trip_p95_s": (5.0, "AI move round trip p95 (queue and thinking) above this (s)"),
    "cpu_headroom": (0.25, "share of the CPU that must stay free (0-1)"),
    "memory_headroom": (0.2, "share of the VM's memory that must stay free (0-1)"),
    "websockets_per_core": (1500, "WebSockets per backend process (one core); measured 2,000"),
    "requests_per_core": (600, "requests/s per backend process (one core); measured 800 moves/s"),
    "write_rate": (400, "database writes/s SQLite may take beside the reads"),
    "disk_free_min_percent": (20, "free disk below this share of the disk (%)"),
    "backup_max_age_hours": (2, "newest backup older than this (hours): a warning, not a scaling step"),
    "horizon_days": (30, "report limits the trend crosses within this many days"),
    "min_trend_days": (1, "shortest window (days) whose trend is projected"),
}

LAYOUT_DEFAULTS: dict[str, Any] = {
    "vm_cores": None,
    "vm_memory_mb": None,
    "plan": "",
    "plans": [],
    "engine_vms": 0,
    "engine_vm_plan": "",
    "backend_processes": 1,
}

DAY = 86400.0


class AdviceError(ValueError):
    """Bad input: the message says what to fix."""


@dataclass
class Check:
    figure: str
    value: float
    limit: float
    unit: str
    upper: bool  # True: the figure must stay at or under the limit
    points_to: str  # the decision a crossing calls for, or "warning"
    series: list[tuple[float, float]]
    threshold: str

    @property
    def crossed(self) -> bool:
        return self.value > self.limit if self.upper else self.value < self.limit


def _number(value: Any, where: str) -> float:
    """A finite number; numeric strings too, as templated variables often arrive as strings."""
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise AdviceError(f"{where}: {value!r} is not a finite number")
    return number


def check_thresholds(given: Mapping[str, Any] | None) -> dict[str, float]:
    """The thresholds with defaults filled in; errors name each bad or contradictory one."""
    given = dict(given or {})
    errors = [f"unknown threshold {name!r}" for name in sorted(set(given) - set(THRESHOLDS))]
    out: dict[str, float] = {}
    for name, (default, _) in THRESHOLDS.items():
        value = given.get(name, default)
        try:
            out[name] = _number(value, f"threshold {name}")
        except AdviceError as exc:
            errors.append(str(exc))
            continue
        if out[name] < 0:
            errors.append(f"threshold {name}: {value} is negative")
    if errors:
        raise AdviceError("; ".join(errors))
    for name in ("cpu_headroom", "memory_headroom"):
        if not 0 <= out[name] < 1:
            errors.append(f"threshold {name}: {out[name]} must be from 0 to under 1 (a share of the total)")
    if not 0 <= out["disk_free_min_percent"] < 100:
        errors.append(f"threshold disk_free_min_percent: {out['disk_free_min_percent']} must be under 100")
    for name in ("websockets_per_core", "requests_per_core", "engine_queue_wait_p95_s", "horizon_days"):
        if out[name] == 0:
            errors.append(f"threshold {name}: 0 would call for scaling out on any load")
    # The round trip of an AI move includes its queue wait: with a lower round-trip limit the slow
    # round trip would always be seen first and the engine's queue never named as the cause.
    if out["move_round_trip_p95_s"] <= out["engine_queue_wait_p95_s"]:
        errors.append(
            f"thresholds contradict each other: move_round_trip_p95_s ({out['move_round_trip_p95_s']:g}) "
            f"must be above engine_queue_wait_p95_s ({out['engine_queue_wait_p95_s']:g}), "
            "as the round trip includes the queue wait"
        )
    # Every write is a request to the one backend process: a write limit above the request limit
    # could never be the first to be reached.
    if out["write_rate"] > out["requests_per_core"]:
        errors.append(
            f"thresholds contradict each other: write_rate ({out['write_rate']:g}) is above "
            f"requests_per_core ({out['requests_per_core']:g}), and every write is a request"
        )
    if out["horizon_days"] < out["min_trend_days"]:
        errors.append(
            f"thresholds contradict each other: horizon_days ({out['horizon_days']:g}) is shorter "
            f"than min_trend_days ({out['min_trend_days']:g})"
        )
    if errors:
        raise AdviceError("; ".join(errors))
    return out


def _whole(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def check_layout(given: Mapping[str, Any] | None) -> dict[str, Any]:
    layout = {**LAYOUT_DEFAULTS, **(given or {})}
    errors = [f"unknown layout key {k!r}" for k in sorted(set(layout) - set(LAYOUT_DEFAULTS))]
    for key in ("vm_cores", "vm_memory_mb"):
        value = layout[key]
        try:
            layout[key] = _number(value, key)
        except AdviceError:
            layout[key] = 0
        if layout[key] <= 0:
            errors.append(f"layout {key}: {value!r} must be a positive number (the game VM's size)")
    for key, least in (("engine_vms", 0), ("backend_processes", 1)):
        value = layout[key]
        try:
            layout[key] = int(_number(value, key))
        except AdviceError:
            layout[key] = least - 1
        if layout[key] < least or layout[key] != _whole(value):
            errors.append(f"layout {key}: {value!r} must be a whole number, {least} or more")
    names = []
    for i, plan in enumerate(layout["plans"] or []):
        if not isinstance(plan, Mapping) or not plan.get("name"):
            errors.append(f"layout plans[{i}]: each plan needs a name")
            continue
        names.append(plan["name"])
    for key in ("plan", "engine_vm_plan"):
        if layout[key] and names and layout[key] not in names:
            errors.append(f"layout {key}: {layout[key]!r} is not one of the plans {names}")
    if errors:
        raise AdviceError("; ".join(errors))
    return layout


def check_samples(samples: Any) -> list[dict[str, float]]:
    """The window's samples, sorted by time; every figure present (as a number) in at least one."""
    if not isinstance(samples, Sequence) or isinstance(samples, str | bytes):
        raise AdviceError("figures: expected a list of samples, each with a time and the figures")
    if not samples:
        raise AdviceError("figures: the window is empty; collect at least one sample first")
    out: list[dict[str, float]] = []
    errors: list[str] = []
    for i, sample in enumerate(samples):
        if not isinstance(sample, Mapping):
            errors.append(f"figures[{i}]: {sample!r} is not a mapping")
            continue
        clean: dict[str, float] = {}
        for key, value in sample.items():
            if key != "time" and key not in FIGURES:
                errors.append(f"figures[{i}]: unknown figure {key!r}")
            elif value is not None:
                try:
                    clean[key] = _number(value, f"figures[{i}].{key}")
                except AdviceError as exc:
                    errors.append(str(exc))
                    continue
                if clean[key] < 0 or (key == "disk_total_gb" and clean[key] == 0):
                    errors.append(f"figures[{i}].{key}: {value} is not a possible value")
        if "time" not in clean:
            errors.append(f"figures[{i}]: no time (seconds since the epoch)")
        out.append(clean)
    missing = [name for name in FIGURES if name not in OPTIONAL and not any(name in s for s in out)]
    if missing:
        errors.append("figures missing from every sample: " + ", ".join(missing))
    if errors:
        raise AdviceError("; ".join(errors))
    return sorted(out, key=lambda s: s["time"])


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0-100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def linear_fit(series: Sequence[tuple[float, float]]) -> tuple[float, float] | None:
    """(slope per day, fitted value at the last time) by least squares; None when time does not vary."""
    if len(series) < 2:
        return None
    xs = [t / DAY for t, _ in series]
    ys = [v for _, v in series]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    return slope, my + slope * (xs[-1] - mx)


def _series(samples: Iterable[Mapping[str, float]], fn) -> list[tuple[float, float]]:
    out = []
    for s in samples:
        try:
            out.append((s["time"], fn(s)))
        except KeyError:
            continue  # a sample without one of the figures: skipped for this check only
    return out


def _level(series: list[tuple[float, float]], how: str) -> float:
    values = [v for _, v in series]
    if how == "high":
        return percentile(values, 95)
    if how == "low":
        return percentile(values, 5)
    return values[-1]


def build_checks(
    samples: list[dict[str, float]], t: Mapping[str, float], layout: Mapping[str, Any]
) -> list[Check]:
    procs = layout["backend_processes"]
    engine_local = layout["engine_vms"] == 0
    round_trip_to = "bigger_vm" if engine_local else "engine_vm"

    def figure(name: str):
        return lambda s: s[name]

    def vm_cpu(s: Mapping[str, float]) -> float:
        return s["backend_cpu"] + (s["engine_cpu"] if engine_local else 0.0)

    def vm_memory(s: Mapping[str, float]) -> float:
        return s["backend_memory_mb"] + (s["engine_memory_mb"] if engine_local else 0.0)

    def disk_free(s: Mapping[str, float]) -> float:
        return 100 * s["disk_free_gb"] / s["disk_total_gb"]

    cpu_left = 1 - t["cpu_headroom"]
    # figure, series, how the window sums it up, limit, upper bound?, decision, threshold
    defs = [
        ("engine_queue_wait_p95", figure("engine_queue_wait_p95"), "high", t["engine_queue_wait_p95_s"],
         True, "engine_vm", "engine_queue_wait_p95_s"),
        ("engine_rejections", figure("engine_rejections"), "high", t["engine_rejections_per_min"],
         True, "engine_vm", "engine_rejections_per_min"),
        ("websockets", figure("websockets"), "high", t["websockets_per_core"] * procs,
         True, "ecs", "websockets_per_core"),
        ("request_rate", figure("request_rate"), "high", t["requests_per_core"] * procs,
         True, "ecs", "requests_per_core"),
        ("backend_cpu", figure("backend_cpu"), "high", cpu_left * procs, True, "ecs", "cpu_headroom"),
        ("write_rate", figure("write_rate"), "high", t["write_rate"], True, "ecs", "write_rate"),
        ("vm_cpu", vm_cpu, "high", cpu_left * layout["vm_cores"], True, "bigger_vm", "cpu_headroom"),
        ("vm_memory_mb", vm_memory, "high", (1 - t["memory_headroom"]) * layout["vm_memory_mb"],
         True, "bigger_vm", "memory_headroom"),
        ("disk_free_percent", disk_free, "low", t["disk_free_min_percent"],
         False, "bigger_vm", "disk_free_min_percent"),
        ("move_round_trip_p95", figure("move_round_trip_p95"), "high", t["move_round_trip_p95_s"],
         True, round_trip_to, "move_round_trip_p95_s"),
        ("backup_age_hours", figure("backup_age_hours"), "last", t["backup_max_age_hours"],
         True, "warning", "backup_max_age_hours"),
    ]  # fmt: skip
    units = {"vm_cpu": "cores", "vm_memory_mb": "MB", "disk_free_percent": "%"}
    checks = []
    for figure, fn, how, limit, upper, points_to, threshold in defs:
        series = _series(samples, fn)
        if not series and figure in OPTIONAL:
            continue
        if not series:
            raise AdviceError(f"figures: no sample has every figure that {figure} is made of")
        unit = units.get(figure) or FIGURES[figure][0]
        checks.append(Check(figure, _level(series, how), limit, unit, upper, points_to, series, threshold))
    return checks


def _headroom(check: Check, t: Mapping[str, float]) -> dict[str, Any]:
    if check.upper and check.limit == 0:
        share = None
    elif check.upper:
        share = (check.limit - check.value) / check.limit
    elif check.value > 0:
        # A floor (free disk): the share of what is there now that may go before the limit.
        share = (check.value - check.limit) / check.value
    else:
        share = None
    # A backup's age is a saw tooth, no trend: it is read as it is now.
    fit = None if check.points_to == "warning" else linear_fit(check.series)
    span = (check.series[-1][0] - check.series[0][0]) / DAY
    slope = days = None
    if fit is not None:
        slope, fitted = fit
        if check.crossed:
            days = 0.0
        elif span >= t["min_trend_days"]:
            towards = slope > 0 if check.upper else slope < 0
            if towards:
                days = max(0.0, (check.limit - fitted) / slope)
    elif check.crossed:
        days = 0.0
    return {
        "figure": check.figure,
        "value": round(check.value, 4),
        "limit": round(check.limit, 4),
        "unit": check.unit,
        "headroom_percent": None if share is None else round(100 * share, 1),
        "slope_per_day": None if slope is None else round(slope, 6),
        "days_to_limit": None if days is None else round(days, 1),
        "points_to": check.points_to,
    }


def _plan_after(plans: Sequence[Mapping[str, Any]], name: str) -> str | None:
    names = [p["name"] for p in plans]
    if not name or name not in names:
        return None
    i = names.index(name)
    return names[i + 1] if i + 1 < len(names) else None


def _cause(check: Check) -> dict[str, Any]:
    sign = ">" if check.upper else "<"
    return {
        "figure": check.figure,
        "value": round(check.value, 4),
        "limit": round(check.limit, 4),
        "unit": check.unit,
        "threshold": check.threshold,
        "points_to": check.points_to,
        "text": f"{check.figure} {check.value:g} {check.unit} {sign} {check.limit:g} ({check.threshold})",
    }


def advise(
    samples: Any, thresholds: Mapping[str, Any] | None, layout: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The advice for a window of samples: decision, target, causes, headroom, notices, summary."""
    t = check_thresholds(thresholds)
    lay = check_layout(layout)
    window = check_samples(samples)
    checks = build_checks(window, t, lay)
    crossed = [c for c in checks if c.crossed and c.points_to != "warning"]
    wants = {c.points_to for c in crossed}
    plans = lay["plans"] or []
    causes = [_cause(c) for c in crossed]
    if "ecs" in wants:
        decision, target = "ecs", "the ECS layout of inventories/aws (backend replicas, RDS, Redis)"
    elif "engine_vm" in wants:
        # The engine's queue comes first: its own VM also frees the game VM's CPU and memory.
        decision = "engine_vm"
        if lay["engine_vms"] == 0:
            target = (
                f"an engine VM beside the game VM ({lay['engine_vm_plan'] or lay['plan'] or 'same plan'})"
            )
        else:
            nxt = _plan_after(plans, lay["engine_vm_plan"])
            if nxt is None and plans and lay["engine_vm_plan"]:
                decision, target = "ecs", "the ECS layout of inventories/aws (engine tasks scale out)"
                causes.append(_no_bigger_plan("engine_vm_plan", lay["engine_vm_plan"]))
            else:
                target = f"the engine VM on the next plan ({nxt or 'a bigger plan'})"
    elif "bigger_vm" in wants:
        decision = "bigger_vm"
        nxt = _plan_after(plans, lay["plan"])
        if nxt is None and plans and lay["plan"]:
            decision, target = "ecs", "the ECS layout of inventories/aws (no bigger VM plan)"
            causes.append(_no_bigger_plan("plan", lay["plan"]))
        else:
            target = f"the next VM plan ({nxt or 'a bigger plan'})"
    else:
        decision, target = "stay", f"the current VM ({lay['plan'] or 'as it is'})"
    headroom = [_headroom(c, t) for c in checks]
    soon = [
        h for h in headroom
        if h["days_to_limit"] is not None and 0 < h["days_to_limit"] <= t["horizon_days"]
    ]  # fmt: skip
    notices = [
        f"{c.figure} {c.value:g} {c.unit} > {c.limit:g} ({c.threshold}): check the backups (docs/backups.md)"
        for c in checks
        if c.points_to == "warning" and c.crossed
    ]
    if not any("backup_age_hours" in s for s in window):
        notices.append(
            "backup_age_hours: no backup status in the window; are backups running? (docs/backups.md)"
        )
    levels = {}
    for name, (_, how) in FIGURES.items():
        series = _series(window, lambda s, n=name: s[n])
        if series:
            levels[name] = round(_level(series, how), 4)
    start, end = window[0]["time"], window[-1]["time"]
    result = {
        "decision": decision,
        "target": target,
        "causes": causes,
        "headroom": headroom,
        "soon": soon,
        "notices": notices,
        "figures": levels,
        "thresholds": t,
        "window": {"samples": len(window), "start": start, "end": end, "days": round((end - start) / DAY, 3)},
    }
    result["summary"] = summary(result)
    return result


def _no_bigger_plan(key: str, plan: str) -> dict[str, Any]:
    return {
        "figure": key,
        "value": plan,
        "limit": None,
        "unit": "",
        "threshold": "plans",
        "points_to": "ecs",
        "text": f"{key} {plan} is the largest plan listed",
    }


def summary(advice: Mapping[str, Any]) -> list[str]:
    """Lines for an operator: the decision, why, the headroom, what comes soon."""
    w = advice["window"]
    lines = [
        f"Decision: {advice['decision']}: {advice['target']}",
        f"Window: {w['samples']} samples over {w['days']:g} days",
    ]
    if advice["causes"]:
        lines.append("Because:")
        lines += [f"  {c['text']} -> {c['points_to']}" for c in advice["causes"]]
    else:
        lines.append("Because: every figure is within its limit")
    lines.append("Headroom (figure: value / limit, left, days to the limit at the trend):")
    for h in advice["headroom"]:
        left = "-" if h["headroom_percent"] is None else f"{h['headroom_percent']:g} %"
        days = "no trend towards it" if h["days_to_limit"] is None else f"{h['days_to_limit']:g} days"
        lines.append(f"  {h['figure']}: {h['value']:g} / {h['limit']:g} {h['unit']}, {left}, {days}")
    for h in advice["soon"]:
        lines.append(
            f"Soon: {h['figure']} reaches its limit in {h['days_to_limit']:g} days -> {h['points_to']}"
        )
    lines += [f"Notice: {text}" for text in advice["notices"]]
    return lines
