"""tengen.ops.audit: one JSON line per action, appended under a lock (no line lost or torn by
concurrent writers), size-bounded by rotation, root-only readable; the module as Ansible runs it."""

from __future__ import annotations

import getpass
import json
import multiprocessing
import os
import socket
import stat
from pathlib import Path

import pytest
from ansible_collections.tengen.ops.plugins.module_utils.audit import append, make_entry, tail

from tests.module_runner import run_module


def entry(n: int, **extra: str) -> dict:
    return make_entry(
        action="release",
        outcome="ok",
        controller_user="alice",
        controller="laptop",
        ansible_user="deploy",
        release=f"r{n:04d}",
        detail=extra.get("detail", ""),
    )


def test_entries_are_json_lines_in_a_private_file(tmp_path: Path) -> None:
    trail = tmp_path / "log" / "audit.jsonl"
    for n in range(3):
        append(str(trail), entry(n))
    lines = trail.read_text().splitlines()
    assert [json.loads(line)["release"] for line in lines] == ["r0000", "r0001", "r0002"]
    assert stat.S_IMODE(trail.stat().st_mode) == 0o640
    assert stat.S_IMODE(trail.parent.stat().st_mode) == 0o750
    first = json.loads(lines[0])
    assert (
        first["time"].endswith("Z")
        and first["controller_user"] == "alice"
        and first["ansible_user"] == "deploy"
    )


def test_a_looser_file_is_made_private_on_the_next_entry(tmp_path: Path) -> None:
    trail = tmp_path / "audit.jsonl"
    trail.write_text("")
    trail.chmod(0o666)
    append(str(trail), entry(1))
    assert stat.S_IMODE(trail.stat().st_mode) == 0o640


def test_a_multi_line_detail_stays_one_line(tmp_path: Path) -> None:
    trail = tmp_path / "audit.jsonl"
    append(str(trail), entry(1, detail="health gate failed:\nTraceback\n  boom"))
    (line,) = trail.read_text().splitlines()
    assert json.loads(line)["detail"] == "health gate failed: Traceback boom"


@pytest.mark.parametrize(
    ("field", "value"), [("action", "deploy"), ("outcome", "maybe")], ids=["action", "outcome"]
)
def test_unknown_actions_and_outcomes_are_refused(field: str, value: str) -> None:
    fields = {"action": "release", "outcome": "ok", field: value}
    with pytest.raises(ValueError, match=field):
        make_entry(**fields, controller_user="a", controller="b", ansible_user="c")


def _writer(path: str, worker: int, count: int) -> None:
    for n in range(count):
        append(path, entry(worker * 1000 + n, detail="x" * 300), max_bytes=8192, keep=50)


def test_concurrent_writers_lose_no_entry_and_tear_no_line(tmp_path: Path) -> None:
    trail = tmp_path / "audit.jsonl"
    workers = [multiprocessing.Process(target=_writer, args=(str(trail), w, 40)) for w in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert all(w.exitcode == 0 for w in workers)
    files = [trail] + sorted(tmp_path.glob("audit.jsonl.*[0-9]"))
    releases = [json.loads(line)["release"] for f in files for line in f.read_text().splitlines()]
    # Rotation ran many times under the writers: still every entry once, each file under the bound.
    assert sorted(releases) == sorted(f"r{w * 1000 + n:04d}" for w in range(4) for n in range(40))
    assert len(files) > 3 and all(f.stat().st_size <= 8192 for f in files)


def test_rotation_keeps_the_newest_files_and_tail_reads_across_it(tmp_path: Path) -> None:
    trail = tmp_path / "audit.jsonl"
    for n in range(60):
        append(str(trail), entry(n), max_bytes=1024, keep=2)
    assert sorted(p.name for p in tmp_path.glob("audit.jsonl*") if not p.name.endswith(".lock")) == [
        "audit.jsonl",
        "audit.jsonl.1",
        "audit.jsonl.2",
    ]
    assert trail.stat().st_size <= 1024
    current = len(trail.read_text().splitlines())
    last = tail(str(trail), current + 2)  # more than the current file holds: the rest from .1
    assert [e["release"] for e in last] == [f"r{n:04d}" for n in range(60 - current - 2, 60)]
    assert tail(str(trail), 0) == [] and tail(str(tmp_path / "none.jsonl"), 5) == []


def test_tail_skips_a_line_that_is_not_an_entry(tmp_path: Path) -> None:
    trail = tmp_path / "audit.jsonl"
    append(str(trail), entry(1))
    with trail.open("a") as handle:
        handle.write("not json\n[1]\n")
    append(str(trail), entry(2))
    assert [e["release"] for e in tail(str(trail), 5)] == ["r0001", "r0002"]


def test_the_module_names_the_controller_user_and_reads_the_live_release(tmp_path: Path) -> None:
    ledger = tmp_path / "releases.json"
    ledger.write_text(json.dumps({"releases": [{"id": "3f2a9c1d0b4e"}, {"id": "0123456789ab"}]}))
    trail = tmp_path / "log" / "audit.jsonl"
    args = {"path": str(trail), "action": "maintenance on", "outcome": "ok", "release_ledger": str(ledger)}
    result, out = run_module("tengen.ops.audit", {**args, "detail": "moving"})
    assert not result.get("failed") and result["changed"] is False, out[-2000:]
    (line,) = trail.read_text().splitlines()
    written = json.loads(line)
    assert written == result["entry"]
    assert written["controller_user"] == getpass.getuser() and written["controller"] == socket.gethostname()
    assert written["ansible_user"] == getpass.getuser()  # a local connection logs in as the controller's user
    assert (written["action"], written["outcome"], written["release"], written["detail"]) == (
        "maintenance on",
        "ok",
        "3f2a9c1d0b4e",
        "moving",
    )
    # Check mode returns the entry and writes nothing.
    checked, out = run_module("tengen.ops.audit", args, check=True)
    assert checked["entry"]["action"] == "maintenance on" and len(trail.read_text().splitlines()) == 1, out[
        -2000:
    ]


def test_the_module_refuses_a_bad_outcome_before_writing(tmp_path: Path) -> None:
    trail = tmp_path / "audit.jsonl"
    result, _ = run_module("tengen.ops.audit", {"path": str(trail), "action": "release", "outcome": "fine"})
    assert result.get("failed") and "outcome" in result["msg"]
    assert not os.path.exists(trail)
