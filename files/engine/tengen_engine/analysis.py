"""KataGo's `kata-raw-nn` answer, read and checked, turned into what a client needs.

KataGo's docs/GTP_Extensions.md gives the answer as `symmetry N` then keys each followed by
their values, "possibly with additional whitespace or newlines between any tokens":
whiteWin, whiteLoss, noResult, whiteLead, whiteScoreSelfplay, whiteScoreSelfplaySq,
varTimeLeft, shorttermWinlossError, shorttermScoreError (one number each), `policy` and
`whiteOwnership` (one number per point, the top row first, left to right; policy is NAN on
an illegal point), policyPass. So the answer is read as tokens: a word starts a key and the
numbers after it are its values. (Reading it as "key value" lines took the policy rows of a
2-wide board, "0.25 0.25", for keys.)
"""

from __future__ import annotations

import math

COLUMNS = "ABCDEFGHJKLMNOPQRST"
SCALARS = ("whiteWin", "whiteLoss", "noResult", "whiteLead", "policyPass")
BEST_MOVES = 5


class EngineGarbled(Exception):
    """The engine's answer is not what its protocol promises."""


def parse_raw_nn(raw: str) -> dict[str, list[float]]:
    """Every key of a `kata-raw-nn` answer (one symmetry) with its numbers."""
    values: dict[str, list[float]] = {}
    key = None
    for token in raw.split():
        try:
            number = float(token)  # "NAN" reads as nan
        except ValueError:
            if token in values:
                raise EngineGarbled(f"kata-raw-nn: {token} given twice") from None
            key = token
            values[key] = []
            continue
        if key is None:
            raise EngineGarbled(f"kata-raw-nn: a number before any key: {token}")
        values[key].append(number)
    return values


def _scalar(values: dict[str, list[float]], key: str, low: float, high: float) -> float:
    found = values.get(key)
    if found is None or len(found) != 1:
        raise EngineGarbled(f"kata-raw-nn: {key} is missing or not one number")
    number = found[0]
    if not (math.isfinite(number) and low <= number <= high):
        raise EngineGarbled(f"kata-raw-nn: {key} {number} is outside {low}..{high}")
    return number


def _grid(values: dict[str, list[float]], key: str, size: int) -> list[float]:
    found = values.get(key)
    if found is None or len(found) != size * size:
        got = "none" if found is None else len(found)
        raise EngineGarbled(f"kata-raw-nn: {key} needs {size * size} values, got {got}")
    return found


def vertex(index: int, size: int) -> str:
    """The vertex of the index-th value of a grid printed from the top row down."""
    return f"{COLUMNS[index % size]}{size - index // size}"


def analysis(raw: str, size: int, ownership: bool) -> dict:
    """Win rate, score lead, the network's favourite moves and (when asked) ownership, for Black.

    Raises EngineGarbled when the answer lacks a value or holds one out of its range.
    """
    values = parse_raw_nn(raw)
    white_win = _scalar(values, "whiteWin", 0.0, 1.0)
    white_loss = _scalar(values, "whiteLoss", 0.0, 1.0)
    no_result = _scalar(values, "noResult", 0.0, 1.0)
    if abs(white_win + white_loss + no_result - 1.0) > 0.01:
        raise EngineGarbled("kata-raw-nn: whiteWin, whiteLoss and noResult do not add up to 1")
    # Komi is at most 150 and a board holds size*size points: a lead beyond both is nonsense.
    white_lead = _scalar(values, "whiteLead", -(size * size + 150.0), size * size + 150.0)
    policy = _grid(values, "policy", size)
    policy_pass = _scalar(values, "policyPass", 0.0, 1.0)
    if any(not math.isnan(p) and not 0.0 <= p <= 1.0 for p in policy):
        raise EngineGarbled("kata-raw-nn: a policy value is outside 0..1")
    priors = [(p, vertex(i, size)) for i, p in enumerate(policy) if not math.isnan(p)]
    priors.append((policy_pass, "pass"))
    priors.sort(key=lambda item: -item[0])
    result = {
        "black_win_rate": round(white_loss, 4),
        "white_win_rate": round(white_win, 4),
        # Points Black is ahead by (negative: White leads), komi included.
        "black_score_lead": round(-white_lead, 2),
        "best_moves": [{"move": move, "prior": round(p, 4)} for p, move in priors[:BEST_MOVES]],
    }
    if ownership:
        # From Black's side like the rest: 1 = Black's point, -1 = White's.
        result["ownership"] = {v: round(-o, 3) + 0.0 for v, o in white_ownership(values, size).items()}
    return result


def white_ownership(values: dict[str, list[float]], size: int) -> dict[str, float]:
    """KataGo's whiteOwnership by vertex: 1 is White's point, -1 Black's."""
    grid = _grid(values, "whiteOwnership", size)
    if any(not (math.isfinite(o) and -1.0 <= o <= 1.0) for o in grid):
        raise EngineGarbled("kata-raw-nn: an ownership value is outside -1..1")
    return {vertex(i, size): o for i, o in enumerate(grid)}
