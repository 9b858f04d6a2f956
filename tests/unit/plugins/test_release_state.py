"""release_state: the ledger of releases, run as Ansible runs the module (JSON args on stdin)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from ansible_collections.tengen.ops.plugins.modules import release_state

MODULE = Path(release_state.__file__)
COLLECTIONS = MODULE.parents[5]


def run(args: dict, check: bool = False) -> dict:
    payload = {"ANSIBLE_MODULE_ARGS": {**args, "_ansible_check_mode": check}}
    proc = subprocess.run(
        [sys.executable, str(MODULE)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(COLLECTIONS)},
        check=False,
    )
    return json.loads(proc.stdout)


def images(n: int) -> dict:
    return {"backend": f"tengen/backend:b{n}", "engine": "tengen/engine-gnugo:e1"}


def test_query_without_a_file(tmp_path):
    result = run({"path": str(tmp_path / "releases.json")})
    assert result["changed"] is False
    assert result["releases"] == []
    assert result["current"] is None and result["previous"] is None


def test_present_records_then_is_unchanged(tmp_path):
    path = str(tmp_path / "releases.json")
    first = run({"path": path, "state": "present", "images": images(1), "slot": "blue"})
    assert first["changed"] is True
    assert first["current"]["images"] == images(1)
    again = run({"path": path, "state": "present", "images": images(1), "slot": "blue"})
    assert again["changed"] is False
    assert run({"path": path})["current"]["slot"] == "blue"


def test_new_release_goes_on_top_and_previous_is_the_old(tmp_path):
    path = str(tmp_path / "releases.json")
    run({"path": path, "state": "present", "images": images(1), "slot": "blue"})
    result = run({"path": path, "state": "present", "images": images(2), "slot": "green"})
    assert result["changed"] is True
    assert result["current"]["images"]["backend"] == "tengen/backend:b2"
    assert result["current"]["slot"] == "green"
    assert result["previous"]["images"]["backend"] == "tengen/backend:b1"


def test_rollback_moves_the_old_release_up(tmp_path):
    path = str(tmp_path / "releases.json")
    run({"path": path, "state": "present", "images": images(1), "slot": "blue"})
    run({"path": path, "state": "present", "images": images(2), "slot": "green"})
    result = run({"path": path, "state": "present", "images": images(1), "slot": "blue"})
    assert [r["images"]["backend"] for r in result["releases"]] == ["tengen/backend:b1", "tengen/backend:b2"]


def test_keep_drops_old_releases_and_prunes_only_unused_images(tmp_path):
    path = str(tmp_path / "releases.json")
    for n in range(1, 4):
        run({"path": path, "state": "present", "images": images(n), "slot": "blue", "keep": 2})
    data = json.loads(Path(path).read_text())
    assert [r["images"]["backend"] for r in data["releases"]] == ["tengen/backend:b3", "tengen/backend:b2"]
    result = run({"path": path, "state": "present", "images": images(4), "slot": "green", "keep": 2})
    # b2 is dropped; the engine image is shared with the kept releases, so it stays.
    assert result["pruned_images"] == ["tengen/backend:b2"]


def test_check_mode_writes_nothing(tmp_path):
    path = tmp_path / "releases.json"
    result = run({"path": str(path), "state": "present", "images": images(1), "slot": "blue"}, check=True)
    assert result["changed"] is True
    assert not path.exists()


def test_present_needs_images_and_slot(tmp_path):
    result = run({"path": str(tmp_path / "r.json"), "state": "present"})
    assert result.get("failed") is True
    assert "images" in result["msg"]


def test_corrupt_ledger_fails(tmp_path):
    path = tmp_path / "releases.json"
    path.write_text("[1, 2]")
    result = run({"path": str(path)})
    assert result.get("failed") is True
    assert "not a release ledger" in result["msg"]


@pytest.mark.parametrize("keep", [1, 3])
def test_record_function_keeps_at_most_keep(keep):
    data = {"releases": []}
    for n in range(5):
        data, _ = release_state.record(data, images(n), "blue", keep)
    assert len(data["releases"]) == keep


def test_absent_removes_a_release_so_the_one_before_is_live_again(tmp_path):
    path = str(tmp_path / "releases.json")
    run({"path": path, "state": "present", "images": images(1), "slot": "blue"})
    run({"path": path, "state": "present", "images": images(2), "slot": "green"})
    result = run({"path": path, "state": "absent", "images": images(2)})
    assert result["changed"] is True
    assert result["current"]["images"] == images(1) and result["current"]["slot"] == "blue"
    assert result["previous"] is None
    again = run({"path": path, "state": "absent", "images": images(2)})
    assert again["changed"] is False
