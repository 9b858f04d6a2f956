"""One sample of the figures the scale-out advice reads, from two scrapes of the service.

Python's standard library only, no Ansible import: the scale_advice_figures module and the
scale_figures role's timer (which ships this file to the VM) read /metrics, /proc and the disk
twice, some time apart, and this code turns the two readings into a sample.

Where each figure comes from:
- websockets: the backend's gauge ``tengen_websockets_open`` (summed over its slots);
- request_rate: ``tengen_http_requests_total`` per second, health and metrics probes left out;
- write_rate: accepted POSTs (``tengen_http_requests_total``, method POST, status < 400) plus the
  engine's moves (``tengen_moves_total{by="ai"}``) per second: each is one write transaction;
- move_round_trip_p95: the backend's ``tengen_engine_wait_seconds`` (an AI move, asked and answered);
- engine_queue_wait_p95: the engine's ``tengen_engine_queue_wait_seconds``;
- engine_rejections: ``tengen_engine_requests_total{status="503"}`` (a full queue) per minute;
- backend_cpu, engine_cpu: CPU seconds of the container's processes (the main process and its
  children, the engine processes of the gateway included) per second; memory: their RSS.
A 95th percentile comes from the histogram's buckets between the two scrapes, interpolated
within a bucket as Prometheus' histogram_quantile does; no request in between gives 0.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
import urllib.request
from collections.abc import Iterable, Mapping
from typing import Any

PROBES = ("/healthz", "/readyz", "/metrics")
_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

Metrics = dict[str, list[tuple[dict[str, str], float]]]


def parse(text: str) -> Metrics:
    """Prometheus text format: sample name -> [(labels, value)]."""
    out: Metrics = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if not match:
            continue
        labels = dict(_LABEL.findall(match.group(3) or ""))
        try:
            value = float(match.group(4))
        except ValueError:
            continue
        out.setdefault(match.group(1), []).append((labels, value))
    return out


def merge(texts: Iterable[str]) -> Metrics:
    """Several processes' metrics as one (backend slots): samples side by side, summed on use."""
    out: Metrics = {}
    for text in texts:
        for name, samples in parse(text).items():
            out.setdefault(name, []).extend(samples)
    return out


def total(metrics: Metrics, name: str, match=lambda labels: True) -> float:
    return sum(value for labels, value in metrics.get(name, []) if match(labels))


def buckets(metrics: Metrics, name: str) -> dict[float, float]:
    """Cumulative bucket counts by upper bound, summed over label sets."""
    out: dict[float, float] = {}
    for labels, value in metrics.get(f"{name}_bucket", []):
        bound = math.inf if labels.get("le") == "+Inf" else float(labels["le"])
        out[bound] = out.get(bound, 0.0) + value
    return out


def quantile(before: Mapping[float, float], after: Mapping[float, float], q: float) -> float:
    """The q-quantile (0-1) of the observations between two readings of a histogram."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return 0.0
    rank = q * counts[-1]
    lower, below = 0.0, 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if count >= rank:
            if math.isinf(bound):
                return lower  # beyond the last bucket: its bound is the most that can be said
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, count
    return lower


def _not_probe(labels: Mapping[str, str]) -> bool:
    return labels.get("route") not in PROBES


def _write(labels: Mapping[str, str]) -> bool:
    status = labels.get("status", "")
    return labels.get("method") == "POST" and status.isdigit() and int(status) < 400


def sample(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, float]:
    """A sample from two readings, each {time, backend: [texts], engine: text, backend_proc, engine_proc}.

    backend_proc/engine_proc are {cpu_seconds, rss_mb}; the reading after also carries the
    instant figures (db_size_mb, disk_free_gb, disk_total_gb, backup_age_hours when known).
    """
    seconds = after["time"] - before["time"]
    if seconds <= 0:
        raise ValueError("the two readings must be apart in time")
    b0, b1 = merge(before["backend"]), merge(after["backend"])
    e0, e1 = parse(before["engine"]), parse(after["engine"])

    def rate(m0: Metrics, m1: Metrics, name: str, match=lambda labels: True) -> float:
        # A counter that went down was reset (a restart or a release): count from zero.
        delta = total(m1, name, match) - total(m0, name, match)
        return (delta if delta >= 0 else total(m1, name, match)) / seconds

    writes = rate(b0, b1, "tengen_http_requests_total", _write) + rate(
        b0, b1, "tengen_moves_total", lambda labels: labels.get("by") == "ai"
    )
    out = {
        "time": after["time"],
        "websockets": total(b1, "tengen_websockets_open"),
        "request_rate": rate(b0, b1, "tengen_http_requests_total", _not_probe),
        "write_rate": writes,
        "move_round_trip_p95": quantile(
            buckets(b0, "tengen_engine_wait_seconds"), buckets(b1, "tengen_engine_wait_seconds"), 0.95
        ),
        "engine_queue_wait_p95": quantile(
            buckets(e0, "tengen_engine_queue_wait_seconds"),
            buckets(e1, "tengen_engine_queue_wait_seconds"),
            0.95,
        ),
        "engine_rejections": 60
        * rate(e0, e1, "tengen_engine_requests_total", lambda labels: labels.get("status") == "503"),
    }
    for part in ("backend", "engine"):
        p0, p1 = before[f"{part}_proc"], after[f"{part}_proc"]
        out[f"{part}_cpu"] = max(0.0, p1["cpu_seconds"] - p0["cpu_seconds"]) / seconds
        out[f"{part}_memory_mb"] = p1["rss_mb"]
    for key in ("players", "db_size_mb", "disk_free_gb", "disk_total_gb", "backup_age_hours"):
        if after.get(key) is not None:
            out[key] = after[key]
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in out.items()}


# --------------------------------------------------------------------------- readings on the VM
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def tree(pid: int) -> list[int]:
    """The process and all its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            continue  # gone between two reads
    return out


def proc(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) and resident memory (MB) of a process tree."""
    cpu = rss = 0.0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{p}/statm") as f:
                pages = int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue
        cpu += (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime
        rss += pages * PAGE / 2**20
    return {"cpu_seconds": cpu, "rss_mb": rss}


def scrape(url: str, token: str = "") -> str:
    # An engine with a shared secret (TENGEN_ENGINE_TOKEN) shows its /metrics only with it.
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310 (a URL the playbook built)
        return resp.read().decode()


def _token(item: dict) -> str:
    """The engine's shared secret, from its container's environment (empty when it asks none)."""
    env = (item.get("Config") or {}).get("Env") or []
    return next((e.split("=", 1)[1] for e in env if e.startswith("TENGEN_ENGINE_TOKEN=")), "")


def target(item: dict, port: int) -> dict:
    """{url, pid} as given, or from a container's inspect result."""
    if "url" in item and "pid" in item:
        return {"url": item["url"], "pid": int(item["pid"])}
    try:
        pid = int(item["State"]["Pid"])
        address = next(
            n["IPAddress"] for n in item["NetworkSettings"]["Networks"].values() if n.get("IPAddress")
        )
    except (KeyError, TypeError, StopIteration, ValueError):
        raise ValueError(f"{item.get('Name', item)!r}: neither url and pid nor a running container") from None
    if pid <= 0:
        raise ValueError(f"{item.get('Name')}: the container is not running")
    return {"url": f"http://{address}:{port}/metrics", "pid": pid, "token": _token(item)}


def reading(backend: list[dict], engine: dict) -> dict:
    return {
        "time": time.time(),
        "backend": [scrape(b["url"]) for b in backend],
        "engine": scrape(engine["url"], engine.get("token", "")),
        "backend_proc": _sum(proc(b["pid"]) for b in backend),
        "engine_proc": proc(engine["pid"]),
    }


def _sum(parts) -> dict[str, float]:
    out = {"cpu_seconds": 0.0, "rss_mb": 0.0}
    for part in parts:
        out = {k: out[k] + part[k] for k in out}
    return out


def instant(db: str, status: str | None) -> dict:
    """The figures read once: the database's size, the disk it lives on, the newest backup's age."""
    size = sum(os.path.getsize(p) for p in (db, f"{db}-wal") if os.path.exists(p))
    disk = os.statvfs(os.path.dirname(db) or "/")
    out = {
        "db_size_mb": size / 2**20,
        "disk_free_gb": disk.f_bavail * disk.f_frsize / 2**30,
        "disk_total_gb": disk.f_blocks * disk.f_frsize / 2**30,
    }
    if status and os.path.exists(status):
        with open(status) as f:
            last = json.load(f).get("last_success_epoch")
        if last:
            out["backup_age_hours"] = max(0.0, time.time() - float(last)) / 3600
    return out
