"""scale_advice_figures against a running backend and engine gateway (GNU Go): the figures of real load."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.service_servers import Server, create, play, request

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "collections/ansible_collections/tengen/ops/plugins/modules/scale_advice_figures.py"


def run_module(args: dict) -> dict:
    payload = {"ANSIBLE_MODULE_ARGS": {**args, "_ansible_check_mode": True}}
    proc = subprocess.run(
        [sys.executable, str(MODULE)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO / "collections")},
        check=False,
    )
    return json.loads(proc.stdout)


def test_a_sample_of_real_load(backend: Server, engine: Server, tmp_path: Path) -> None:
    status_file = tmp_path / "status.json"
    status_file.write_text(json.dumps({"last_success_epoch": int(time.time()) - 7200}))
    stop = threading.Event()
    played = []

    def load() -> None:
        # Human games (one write per move) and AI games (an engine request each).
        while not stop.is_set():
            game, tokens = create(backend, size=9, opponent="human")
            played.append(play(backend, game["id"], tokens["B"], "E5")[0])
            game, tokens = create(backend, size=9, opponent="ai", color="black")
            played.append(play(backend, game["id"], tokens["B"], "E5")[0])
            time.sleep(0.05)

    worker = threading.Thread(target=load)
    worker.start()
    try:
        out = run_module(
            {
                "backend": [{"url": f"{backend.url}/metrics", "pid": backend.proc.pid}],
                # The engine as the playbook hands it over: its container's inspect result.
                "engine": {
                    "Name": "/tengen-engine-1",
                    "State": {"Pid": engine.proc.pid},
                    "NetworkSettings": {"Networks": {"tengen_default": {"IPAddress": "127.0.0.1"}}},
                },
                "engine_port": int(engine.env["TENGEN_ENGINE_PORT"]),
                "seconds": 3,
                "db_path": backend.env["TENGEN_DB_PATH"],
                "backup_status_file": str(status_file),
            }
        )
    finally:
        stop.set()
        worker.join(30)
    assert out.get("changed") is False, out
    s = out["sample"]
    assert set(played) == {200}
    assert s["request_rate"] > 1 and s["write_rate"] > 1
    assert s["backend_cpu"] > 0 and s["engine_cpu"] > 0
    # The gateway's GNU Go processes count in the engine's memory.
    assert s["backend_memory_mb"] > 10 and s["engine_memory_mb"] > 10
    assert s["move_round_trip_p95"] > 0
    assert os.path.getsize(backend.env["TENGEN_DB_PATH"]) / 2**20 <= s["db_size_mb"]
    assert 0 < s["disk_free_gb"] < s["disk_total_gb"]
    assert 1.99 < s["backup_age_hours"] < 2.1


def test_a_dead_endpoint_is_a_clear_failure(backend: Server, tmp_path: Path) -> None:
    out = run_module(
        {
            "backend": [{"url": f"{backend.url}/metrics", "pid": backend.proc.pid}],
            "engine": {"url": "http://127.0.0.1:9/metrics", "pid": backend.proc.pid},
            "seconds": 0.1,
            "db_path": str(tmp_path / "none.db"),
        }
    )
    assert out["failed"] is True
    assert out["msg"].startswith("Cannot read the service's figures:")
    assert request("GET", f"{backend.url}/healthz")[0] == 200


def test_a_stopped_container_is_named(backend: Server, tmp_path: Path) -> None:
    stopped = {"Name": "/tengen-engine-1", "State": {"Pid": 0}, "NetworkSettings": {"Networks": {}}}
    out = run_module(
        {
            "backend": [{"url": f"{backend.url}/metrics", "pid": backend.proc.pid}],
            "engine": stopped,
            "db_path": str(tmp_path / "none.db"),
        }
    )
    assert out["failed"] is True
    assert out["msg"].startswith("Cannot find the service's processes: '/tengen-engine-1'")
    assert out["msg"].endswith("neither url and pid nor a running container")


def load_sampler():
    """The timer's program, importing the same scale_figures.py it is installed beside on the VM."""
    import importlib.machinery
    import importlib.util

    sys.path.insert(0, str(MODULE.parents[1] / "module_utils"))
    path = REPO / "roles/scale_figures/files/tengen-scale-figures"
    loader = importlib.machinery.SourceFileLoader("tengen_scale_figures", str(path))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return module


def test_the_timer_keeps_a_rolling_window(backend: Server, engine: Server, tmp_path: Path) -> None:
    sampler = load_sampler()
    window = tmp_path / "window.jsonl"
    targets = (
        [{"url": f"{backend.url}/metrics", "pid": backend.proc.pid}],
        {"url": f"{engine.url}/metrics", "pid": engine.proc.pid},
    )

    def now(at: float | None = None) -> dict:
        r = {**sampler.reading(*targets), **sampler.instant(backend.env["TENGEN_DB_PATH"], None)}
        return {**r, "time": at} if at is not None else r

    first = now()
    # The first run only keeps its reading; a sample eight days old is already out of the window.
    window.write_text(json.dumps({"time": first["time"] - 8 * 86400, "websockets": 1}) + "\n")
    assert sampler.record(tmp_path, first, 7, 3600) is None
    assert window.read_text() == ""
    game, tokens = create(backend, size=9, opponent="human")
    assert play(backend, game["id"], tokens["B"], "E5")[0] == 200
    made = sampler.record(tmp_path, now(first["time"] + 60), 7, 3600)
    # Two requests in the 60 s between the readings (the create and the move), both writes.
    assert made["request_rate"] == pytest.approx(2 / 60, abs=1e-5)
    assert made["write_rate"] == made["request_rate"]
    assert [json.loads(line) for line in window.read_text().splitlines()] == [made]
    # After a gap longer than max_gap (the timer was off), no sample averages over the gap.
    assert sampler.record(tmp_path, now(first["time"] + 60 + 7200), 7, 3600) is None
    assert len(window.read_text().splitlines()) == 1


def test_an_engine_with_a_shared_secret_is_read_with_the_secret_from_its_container(tmp_path: Path) -> None:
    """An engine VM's gateway (and the game VM's, once engine VMs exist) shows /metrics only to the
    secret, which the figures take from the container's environment, as docker inspect gives it."""
    import urllib.error

    sys.path.insert(0, str(REPO / "collections"))
    from ansible_collections.tengen.ops.plugins.module_utils.scale_figures import scrape, target

    from tests.service_servers import start_engine

    secret = "s" * 24
    engine = start_engine(tmp_path, TENGEN_ENGINE_TOKEN=secret)
    try:
        host, port = engine.url.removeprefix("http://").split(":")
        inspected = {
            "Name": "/tengen-engine-1",
            "State": {"Pid": engine.proc.pid},
            "NetworkSettings": {"Networks": {"tengen_default": {"IPAddress": host}}},
            "Config": {"Env": ["PATH=/usr/bin", f"TENGEN_ENGINE_TOKEN={secret}"]},
        }
        found = target(inspected, int(port))
        assert found["token"] == secret
        assert "tengen_engine_queue_wait_seconds" in scrape(found["url"], found["token"])
        with pytest.raises(urllib.error.HTTPError) as refused:
            scrape(found["url"])
        assert refused.value.code == 401
    finally:
        engine.stop()
