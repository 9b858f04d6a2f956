"""The fake KataGo itself: it must speak KataGo's GTP as documented, or the gateway's KataGo tests
would prove nothing. Each test runs one GTP session on the fake's stdin, as the gateway does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tengen_engine.analysis import parse_raw_nn

from tests.engine.conftest import FAKE_KATAGO, KATAGO_CONFIG

# KataGo's rule shorthands (docs/GTP_Extensions.md, kata-set-rules).
KATAGO_RULES = [
    "tromp-taylor",
    "chinese",
    "chinese-ogs",
    "chinese-kgs",
    "japanese",
    "korean",
    "stone-scoring",
    "aga",
    "bga",
    "new-zealand",
    "aga-button",
]


def run(args: list[str], commands: list[str] = ()) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(FAKE_KATAGO), *args],
        input="".join(f"{command}\n" for command in commands),
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "model.bin.gz"
    path.write_bytes(b"x")
    return path


def session(model: Path, commands: list[str]) -> list[tuple[bool, str]]:
    """The (accepted, text) answer to each command, read as the gateway reads them."""
    done = run(["gtp", "-model", str(model), "-config", str(KATAGO_CONFIG)], commands)
    assert done.returncode == 0, done.stderr
    answers = [block.strip() for block in done.stdout.split("\n\n") if block.strip()]
    assert len(answers) == len(commands), done.stdout
    return [(answer[0] == "=", answer[1:].strip()) for answer in answers]


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["benchmark"], "Unknown subcommand: benchmark"),
        (["gtp", "-config", str(KATAGO_CONFIG)], "Required argument missing: model"),
        (["gtp", "-model", "{model}", "-config"], "Missing a value for this argument! for argument -config"),
        (["gtp", "-model", "{model}", "-cfg", "x"], "Couldn't find match for argument for argument -cfg"),
        (["gtp", "-model", "/nonexistent", "-config", str(KATAGO_CONFIG)], "Could not open model file"),
        (
            ["gtp", "-model", "{model}", "-config", str(KATAGO_CONFIG), "-override-config", "maxVisit=5"],
            "Unknown config keys: ['maxVisit']",
        ),
        (
            ["gtp", "-model", "{model}", "-config", str(KATAGO_CONFIG), "-override-config", "maxTime=soon"],
            "maxTime must be a number",
        ),
    ],
)
def test_a_bad_command_line_is_refused_on_stderr(model: Path, argv: list[str], said: str) -> None:
    done = run([arg.replace("{model}", str(model)) for arg in argv], ["name"])
    assert done.returncode == 1 and done.stdout == ""
    assert said in done.stderr


def test_every_katago_rule_name_is_taken_and_others_refused(model: Path) -> None:
    answers = session(model, [*(f"kata-set-rules {r}" for r in KATAGO_RULES), "kata-set-rules go"])
    assert answers[:-1] == [(True, "")] * len(KATAGO_RULES)
    assert answers[-1][0] is False and answers[-1][1].startswith("Unknown rules 'go'")


def test_illegal_moves_and_bad_komi_are_refused_as_katago_does(model: Path) -> None:
    answers = session(
        model,
        [
            "boardsize 9",
            "clear_board",
            "komi 6.3",
            "komi 200",
            "komi 6.5",
            "play B E5",
            "play W E5",
            "play W J10",
            "genmove W",
        ],
    )
    assert answers[2] == (False, "komi must be an integer or half-integer")
    assert answers[3] == (False, "unacceptable komi")
    assert answers[4:6] == [(True, ""), (True, "")]
    assert answers[6] == (False, "illegal move")  # occupied
    assert answers[7] == (False, "Could not parse vertex: 'J10'")  # off a 9x9 board
    ok, move = answers[8]
    assert ok and move not in ("E5", "pass")


def test_suicide_and_ko_follow_the_rules_in_force(model: Path) -> None:
    corner = ["boardsize 5", "clear_board", "play B A2", "play B B1"]
    # White A1 is a one-stone suicide: illegal under every rule set.
    answers = session(model, [*corner, "kata-set-rules tromp-taylor", "play W A1"])
    assert answers[-1] == (False, "illegal move")
    # Two White stones filling their last liberty: multi-stone suicide, legal only where the rules say so.
    two = ["boardsize 5", "clear_board", "play B A3", "play B B2", "play B C1", "play W A1", "play W A2"]
    assert session(model, [*two, "kata-set-rules chinese", "play W B1"])[-1] == (False, "illegal move")
    after = session(model, [*two, "kata-set-rules tromp-taylor", "play W B1", "play B A1"])
    assert after[-2:] == [(True, ""), (True, "")]  # the White stones were removed: A1 is free again
    # A simple ko: White takes at B2, Black may not take back at C2 at once.
    ko = ["boardsize 5", "clear_board", "kata-set-rules japanese"]
    ko += ["play B B1", "play B A2", "play B B3", "play B C2"]
    ko += ["play W C1", "play W C3", "play W D2", "play W B2"]
    assert session(model, [*ko, "play B C2"])[-1] == (False, "illegal move")
    assert session(model, [*ko, "play B E5", "play W E4", "play B C2"])[-1] == (True, "")


@pytest.mark.parametrize("size", [2, 9, 19])
def test_kata_raw_nn_has_katago_s_layout(model: Path, size: int) -> None:
    answers = session(
        model, [f"boardsize {size}", "clear_board", "play B A1", "kata-raw-nn 0", "kata-raw-nn 8"]
    )
    ok, raw = answers[3]
    assert ok
    lines = raw.splitlines()
    assert lines[0] == "symmetry 0"
    # Each key on its own line, then one line per board row for the grids, top row first.
    keys = [line.split()[0] for line in lines if line[:1].isalpha()]
    assert keys == [
        "symmetry",
        "whiteWin",
        "whiteLoss",
        "noResult",
        "whiteLead",
        "whiteScoreSelfplay",
        "whiteScoreSelfplaySq",
        "varTimeLeft",
        "shorttermWinlossError",
        "shorttermScoreError",
        "policy",
        "policyPass",
        "whiteOwnership",
    ]
    policy = lines[lines.index("policy") + 1 : lines.index("policy") + 1 + size]
    assert all(len(row.split()) == size for row in policy)
    assert policy[-1].split()[0] == "NAN"  # A1, Black's stone, is the first point of the last row
    values = parse_raw_nn(raw)
    assert len(values["policy"]) == len(values["whiteOwnership"]) == size * size
    assert answers[4][0] is False and "symmetry index [0-7]" in answers[4][1]
