"""A sample of figures from two scrapes of the service's real /metrics text (the backend's and the
engine gateway's own metric objects, fed known observations)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from ansible_collections.tengen.ops.plugins.module_utils import scale_figures as sf
from prometheus_client import generate_latest

REPO = Path(__file__).resolve().parents[4]
for part in ("app", "engine"):
    if str(REPO / "files" / part) not in sys.path:
        sys.path.insert(0, str(REPO / "files" / part))

from tengen_app.app import Metrics  # noqa: E402
from tengen_engine.app import Gateway, Settings  # noqa: E402


def reading(t: float, backend: list, engine: Gateway, cpu: tuple[float, float], **extra: float) -> dict:
    return {
        "time": t,
        "backend": [generate_latest(m.registry).decode() for m in backend],
        "engine": generate_latest(engine.registry).decode(),
        "backend_proc": {"cpu_seconds": cpu[0], "rss_mb": 150.0},
        "engine_proc": {"cpu_seconds": cpu[1], "rss_mb": 900.0},
        **extra,
    }


def test_two_scrapes_make_a_sample() -> None:
    blue, green = Metrics(), Metrics()
    engine = Gateway(Settings())
    # Before: traffic that must not count (it happened before the first reading).
    blue.requests.labels("POST", "/api/games/{id}/moves", "200").inc(1000)
    engine.queue_wait.observe(30)
    before = reading(1000.0, [blue, green], engine, (50.0, 200.0))
    # Over 10 s: 40 requests, 30 of them accepted POSTs, 5 probes (not load), 10 AI moves.
    blue.requests.labels("POST", "/api/games/{id}/moves", "200").inc(25)
    green.requests.labels("POST", "/api/games", "201").inc(5)
    green.requests.labels("POST", "/api/games/{id}/moves", "409").inc(2)
    blue.requests.labels("GET", "/api/games/{id}", "200").inc(8)
    blue.requests.labels("GET", "/readyz", "200").inc(5)
    blue.moves.labels("ai").inc(10)
    blue.moves.labels("human").inc(25)
    blue.websockets.set(120)
    green.websockets.set(30)
    # Engine: 20 waits, 18 short (0.01 s) and 2 of 4 s; the 95th is the 19th: in the 2-5 s bucket.
    for _ in range(18):
        engine.queue_wait.observe(0.01)
    engine.queue_wait.observe(4)
    engine.queue_wait.observe(4)
    engine.requests.labels("/move", "503").inc(3)
    for seconds in [0.3] * 19 + [7]:
        blue.engine_wait.observe(seconds)
    after = reading(1010.0, [blue, green], engine, (55.0, 212.0), db_size_mb=12.5, disk_free_gb=50.0)

    s = sf.sample(before, after)
    assert s["time"] == 1010.0
    assert s["websockets"] == 150
    assert s["request_rate"] == pytest.approx(40 / 10)
    # (25 + 5 accepted POSTs + 10 AI moves) / 10 s; the refused POSTs wrote nothing.
    assert s["write_rate"] == pytest.approx(40 / 10)
    # Rank 0.95 x 20 = 19 of the observations: 18 lie under 0.05 s, 2 in (2, 5]: 2 + 3 x (19 - 18) / 2.
    assert s["engine_queue_wait_p95"] == pytest.approx(3.5)
    # 19 of 20 round trips in (0.25, 0.5]: rank 19 is that bucket's top, 0.5 s.
    assert s["move_round_trip_p95"] == pytest.approx(0.5)
    assert s["engine_rejections"] == pytest.approx(3 * 60 / 10)
    assert (s["backend_cpu"], s["engine_cpu"]) == (pytest.approx(0.5), pytest.approx(1.2))
    assert (s["backend_memory_mb"], s["engine_memory_mb"]) == (150.0, 900.0)
    assert (s["db_size_mb"], s["disk_free_gb"]) == (12.5, 50.0)
    assert "backup_age_hours" not in s


def test_a_restarted_backend_counts_from_zero() -> None:
    old, new = Metrics(), Metrics()
    engine = Gateway(Settings())
    old.requests.labels("GET", "/api/games/{id}", "200").inc(500)
    before = reading(0.0, [old], engine, (10.0, 10.0))
    new.requests.labels("GET", "/api/games/{id}", "200").inc(20)
    s = sf.sample(before, reading(10.0, [new], engine, (11.0, 10.0)))
    assert s["request_rate"] == pytest.approx(2.0)
    assert s["engine_queue_wait_p95"] == 0.0  # no engine request in between


def test_quantile_beyond_the_last_bucket_is_the_last_bound() -> None:
    assert sf.quantile({}, {1.0: 0, 5.0: 0, float("inf"): 4}, 0.95) == 5.0
    assert sf.quantile({1.0: 3, float("inf"): 3}, {1.0: 3, float("inf"): 3}, 0.95) == 0.0


def test_readings_must_be_apart() -> None:
    engine = Gateway(Settings())
    r = reading(5.0, [Metrics()], engine, (1.0, 1.0))
    with pytest.raises(ValueError, match="apart in time"):
        sf.sample(r, r)
