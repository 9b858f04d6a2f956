"""Reading KataGo's `kata-raw-nn` answer (tengen_engine.analysis) and the gateway's KataGo settings."""

from __future__ import annotations

import pytest
from tengen_engine.analysis import EngineGarbled, analysis, parse_raw_nn
from tengen_engine.app import Settings

# KataGo's layout (docs/GTP_Extensions.md) for a 2x2 board, Black on B2 (the top right point).
RAW_2X2 = """symmetry 0
whiteWin 0.250000
whiteLoss 0.700000
noResult 0.050000
whiteLead -3.250
whiteScoreSelfplay -3.000
whiteScoreSelfplaySq 16.000
varTimeLeft 12.500
shorttermWinlossError 0.300
shorttermScoreError 2.500
policy
0.400000      NAN
0.100000 0.300000
policyPass 0.200000
whiteOwnership
-0.2000000 -0.9500000
0.0000000 0.4000000
"""


def test_every_key_is_read_and_board_rows_are_not_taken_for_keys() -> None:
    values = parse_raw_nn(RAW_2X2)
    # Each row of two numbers once looked like a "key value" line: no such junk keys now.
    assert set(values) == {
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
    }
    assert values["policy"][0] == 0.4 and values["policy"][1] != values["policy"][1]  # NAN
    assert values["whiteOwnership"] == [-0.2, -0.95, 0.0, 0.4]


def test_the_answer_is_turned_to_black_s_side_and_keyed_by_vertex() -> None:
    result = analysis(RAW_2X2, 2, ownership=True)
    assert result == {
        "black_win_rate": 0.7,
        "white_win_rate": 0.25,
        "black_score_lead": 3.25,
        "best_moves": [
            {"move": "A2", "prior": 0.4},
            {"move": "B1", "prior": 0.3},
            {"move": "pass", "prior": 0.2},
            {"move": "A1", "prior": 0.1},
        ],
        # The top row comes first in KataGo's grid: A2 B2, then A1 B1.
        "ownership": {"A2": 0.2, "B2": 0.95, "A1": 0.0, "B1": -0.4},
    }


def test_extra_whitespace_between_tokens_is_allowed() -> None:
    squeezed = " ".join(RAW_2X2.split())
    assert analysis(squeezed, 2, ownership=True) == analysis(RAW_2X2, 2, ownership=True)


@pytest.mark.parametrize(
    ("raw", "word"),
    [
        (RAW_2X2.replace("whiteWin 0.250000", "whiteWin 1.250000"), "whiteWin"),
        (RAW_2X2.replace("noResult 0.050000", "noResult 0.550000"), "add up"),
        (RAW_2X2.replace("whiteLead -3.250", "whiteLead nan"), "whiteLead"),
        (RAW_2X2.replace("whiteLead -3.250", "whiteLead 1e9"), "whiteLead"),
        (RAW_2X2.replace("0.100000 0.300000\n", "0.100000\n"), "policy needs 4"),
        (RAW_2X2.replace("0.100000 0.300000", "0.100000 3.0"), "policy value"),
        (RAW_2X2.replace("-0.9500000", "-1.9500000"), "ownership value"),
        (RAW_2X2.replace("policyPass 0.200000", ""), "policyPass"),
        (RAW_2X2 + "whiteWin 0.2\n", "given twice"),
        ("0.5 whiteWin 0.5", "before any key"),
        ("= ? illegal", "whiteWin"),
    ],
)
def test_an_answer_out_of_protocol_is_refused(raw: str, word: str) -> None:
    with pytest.raises(EngineGarbled, match=word):
        analysis(raw, 2, ownership=True)


def test_ownership_is_checked_only_when_asked() -> None:
    without = RAW_2X2[: RAW_2X2.index("whiteOwnership")]
    assert "ownership" not in analysis(without, 2, ownership=False)
    with pytest.raises(EngineGarbled, match="whiteOwnership needs 4"):
        analysis(without, 2, ownership=True)


def test_the_search_time_must_fit_in_the_request_timeout(monkeypatch) -> None:
    monkeypatch.setenv("TENGEN_ENGINE", "katago")
    monkeypatch.setenv("TENGEN_ENGINE_TIMEOUT", "10")
    monkeypatch.setenv("TENGEN_KATAGO_MAX_TIME", "10")
    with pytest.raises(SystemExit, match="TENGEN_KATAGO_MAX_TIME"):
        Settings.from_env()
    monkeypatch.setenv("TENGEN_KATAGO_MAX_TIME", "9.5")
    assert "maxTime=9.5" in Settings.from_env().argv()[-1]
