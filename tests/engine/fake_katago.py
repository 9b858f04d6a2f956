#!/usr/bin/env python3
"""A stand-in for the `katago` binary, run by the engine gateway in the tests.

KataGo cannot be downloaded on the test machines, so this program plays its part in the
gateway's KataGo paths: it checks its command line as `katago gtp` does (`gtp -model FILE
-config FILE [-override-config k=v,...]`, every config key known), keeps a board and refuses
illegal moves (occupied point, suicide, simple ko) with `? illegal move`, takes rules through
`kata-set-rules`, answers `genmove` and `kata-raw-nn` in KataGo's output format, and the
standard GTP commands, with the error texts of KataGo's cpp/command/gtp.cc. Its play and its
numbers are deterministic and weak: they come from the stones on the board, not from a network.

Environment (all optional):
- FAKE_KATAGO_LOG: a file that gets one JSON line per event: start (with argv), ready, command.
- FAKE_KATAGO_LOAD_SECONDS: sleep this long before reading commands (KataGo loads its network).
- FAKE_KATAGO_HOLD: a file; while it exists, the process keeps "loading" (answers nothing), so
  that a test can order events (a 504 while the replacement loads) without timing them.
- FAKE_KATAGO_TRAP: a file; when it exists and holds "die CMD" or "hang CMD", the next CMD
  (e.g. genmove) makes the process exit without answering, or stop answering; the file is
  removed when the trap fires, so that the replacement process behaves.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

COLUMNS = "ABCDEFGHJKLMNOPQRST"
# The rule names `kata-set-rules` knows (KataGo's docs/GTP_Extensions.md); JSON rules and
# KataGo's short "koSIMPLEscoreAREA..." forms are not understood here.
RULES = {
    "tromp-taylor": True,
    "chinese": False,
    "chinese-ogs": False,
    "chinese-kgs": False,
    "japanese": False,
    "korean": False,
    "stone-scoring": False,
    "aga": False,
    "bga": False,
    "new-zealand": True,
    "aga-button": False,
}  # name -> multi-stone suicide legal
# Keys of KataGo's GTP config (cpp/configs/gtp_example.cfg) this stand-in accepts. KataGo itself
# only warns about a key it does not use; refusing one here catches a misspelt key in tests.
CONFIG_KEYS = {
    "logDir",
    "logFile",
    "logAllGTPCommunication",
    "logSearchInfo",
    "logToStderr",
    "logTimeStamp",
    "rules",
    "koRule",
    "scoringRule",
    "taxRule",
    "multiStoneSuicideLegal",
    "hasButton",
    "whiteHandicapBonus",
    "allowResignation",
    "resignThreshold",
    "resignConsecTurns",
    "resignMinScoreDifference",
    "maxVisits",
    "maxPlayouts",
    "maxTime",
    "ponderingEnabled",
    "maxVisitsPondering",
    "maxPlayoutsPondering",
    "maxTimePondering",
    "lagBuffer",
    "numSearchThreads",
    "searchFactorAfterOnePass",
    "searchFactorAfterTwoPass",
    "searchFactorWhenWinning",
    "searchFactorWhenWinningThreshold",
    "nnMaxBatchSize",
    "nnCacheSizePowerOfTwo",
    "nnMutexPoolSizePowerOfTwo",
    "numNNServerThreadsPerModel",
    "nnRandomize",
    "nnRandSeed",
    "playoutDoublingAdvantage",
    "playoutDoublingAdvantagePla",
    "friendlyPassOk",
    "analysisWideRootNoise",
    "cudaDeviceToUse",
    "cudaUseFP16",
    "cudaUseNHWC",
}
COMMANDS = (
    "protocol_version name version known_command list_commands quit boardsize clear_board komi play "
    "genmove final_score showboard kata-set-rules kata-get-rules kata-set-param kata-raw-nn"
).split()


def log(event: str, **fields: object) -> None:
    path = os.environ.get("FAKE_KATAGO_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps({"pid": os.getpid(), "event": event, **fields}) + "\n")


def fail(message: str) -> None:
    print(message, file=sys.stderr)
    log("refused", message=message)
    sys.exit(1)


def parse_config(path: str) -> dict[str, str]:
    values = {}
    for number, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip() or not value.strip():
            fail(f"Config {path} line {number}: expected key = value: {raw!r}")
        values[key.strip()] = value.strip()
    return values


def check_argv(argv: list[str]) -> dict[str, str]:
    """The settings `katago gtp` would run with; exits as KataGo does on a bad command line."""
    if not argv or argv[0] != "gtp":
        fail(f"Unknown subcommand: {' '.join(argv[:1])}")
    options: dict[str, str] = {}
    rest = argv[1:]
    while rest:
        flag = rest.pop(0)
        if flag not in ("-model", "-config", "-override-config"):
            fail(f"Error: Couldn't find match for argument for argument {flag}")
        if not rest:
            fail(f"Error: Missing a value for this argument! for argument {flag}")
        if flag in options:
            fail(f"Error: Argument already set! for argument {flag}")
        options[flag] = rest.pop(0)
    for flag in ("-model", "-config"):
        if flag not in options:
            fail(f"Error: Required argument missing: {flag[1:]} for argument undefined")
    model = Path(options["-model"])
    if not model.is_file() or model.stat().st_size == 0:
        fail(f"Could not open model file {model}")
    config = parse_config(options["-config"])
    for item in filter(None, options.get("-override-config", "").split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            fail(f"Could not parse -override-config item {item!r}; expected key=value")
        config[key.strip()] = value.strip()
    unknown = sorted(set(config) - CONFIG_KEYS)
    if unknown:
        fail(f"Unknown config keys: {unknown}")
    for key in ("maxVisits", "numSearchThreads", "nnCacheSizePowerOfTwo"):
        if key in config and not config[key].isdigit():
            fail(f"Config key {key} must be an integer: {config[key]!r}")
    if "maxTime" in config:
        try:
            float(config["maxTime"])
        except ValueError:
            fail(f"Config key maxTime must be a number: {config['maxTime']!r}")
    return config


class Board:
    def __init__(self, size: int) -> None:
        self.size = size
        self.stones: dict[tuple[int, int], str] = {}
        self.ko: tuple[int, int] | None = None
        self.to_play = "B"

    def vertex(self, text: str) -> tuple[int, int] | None:
        """(column, row) counted from 0 at A1; None for pass; ValueError when off the board."""
        text = text.upper()
        if text == "PASS":
            return None
        column = COLUMNS.find(text[:1])
        if column < 0 or column >= self.size or not text[1:].isdigit():
            raise ValueError(text)
        row = int(text[1:]) - 1
        if not 0 <= row < self.size:
            raise ValueError(text)
        return column, row

    def name(self, point: tuple[int, int]) -> str:
        return f"{COLUMNS[point[0]]}{point[1] + 1}"

    def neighbours(self, point: tuple[int, int]) -> list[tuple[int, int]]:
        x, y = point
        near = ((x - 1, y), (x + 1, y), (x, y - 1), (x, y + 1))
        return [(a, b) for a, b in near if 0 <= a < self.size and 0 <= b < self.size]

    def group(self, stones: dict, point: tuple[int, int]) -> tuple[set, set]:
        color, seen, liberties, todo = stones[point], {point}, set(), [point]
        while todo:
            for near in self.neighbours(todo.pop()):
                if near not in stones:
                    liberties.add(near)
                elif stones[near] == color and near not in seen:
                    seen.add(near)
                    todo.append(near)
        return seen, liberties

    def try_play(self, color: str, point: tuple[int, int], suicide_ok: bool) -> tuple[dict, object] | None:
        """The stones and ko point after `color` plays `point`, or None when the move is illegal."""
        if point in self.stones or point == self.ko:
            return None
        stones = dict(self.stones)
        stones[point] = color
        other = "W" if color == "B" else "B"
        captured: set = set()
        for near in self.neighbours(point):
            if stones.get(near) == other and near not in captured:
                group, liberties = self.group(stones, near)
                if not liberties:
                    captured |= group
        for stone in captured:
            del stones[stone]
        group, liberties = self.group(stones, point)
        if not liberties:
            if len(group) == 1 or not suicide_ok:
                return None
            for stone in group:
                del stones[stone]
        ko = None
        if len(captured) == 1 and len(group) == 1 and len(liberties) == 1:
            ko = next(iter(captured))
        return stones, ko

    def play(self, color: str, point: tuple[int, int] | None, suicide_ok: bool) -> bool:
        if point is None:
            self.ko, self.to_play = None, "W" if color == "B" else "B"
            return True
        after = self.try_play(color, point, suicide_ok)
        if after is None:
            return False
        self.stones, self.ko = after
        self.to_play = "W" if color == "B" else "B"
        return True

    def legal(self, color: str, point: tuple[int, int], suicide_ok: bool) -> bool:
        return self.try_play(color, point, suicide_ok) is not None

    def own_eye(self, color: str, point: tuple[int, int]) -> bool:
        return all(self.stones.get(near) == color for near in self.neighbours(point))


class Engine:
    def __init__(self) -> None:
        self.board = Board(19)
        self.params: dict[str, float] = {}
        self.komi = 7.5
        self.rules = "tromp-taylor"  # KataGo's default before a config or command sets one

    @property
    def suicide_ok(self) -> bool:
        return RULES[self.rules]

    def handle(self, name: str, args: list[str]) -> tuple[bool, str]:
        if name == "quit":
            return True, ""
        if name == "protocol_version":
            return True, "2"
        if name == "name":
            return True, "KataGo"
        if name == "version":
            return True, "1.16.4"
        if name == "known_command":
            return True, "true" if args and args[0] in COMMANDS else "false"
        if name == "list_commands":
            return True, "\n".join(COMMANDS)
        if name == "boardsize":
            if len(args) != 1 or not args[0].isdigit():
                got = " ".join(args)
                return False, f"Expected int argument for boardsize or pair of ints but got '{got}'"
            if not 2 <= int(args[0]) <= 19:
                return False, "unacceptable size"
            self.board = Board(int(args[0]))
            return True, ""
        if name == "clear_board":
            self.board = Board(self.board.size)
            return True, ""
        if name == "komi":
            try:
                (value,) = map(float, args)
            except ValueError:
                return False, f"Expected single float argument for komi but got '{' '.join(args)}'"
            if not (math.isfinite(value) and -150 <= value <= 150):
                return False, "unacceptable komi"
            if value * 2 != int(value * 2):
                return False, "komi must be an integer or half-integer"
            self.komi = value
            return True, ""
        if name == "kata-set-param":
            # The search parameters the gateway sets; each takes a number.
            if len(args) != 2 or args[0] not in ("maxVisits", "maxPlayouts", "maxTime"):
                return False, f"Invalid parameter or value: {' '.join(args)}"
            try:
                value = float(args[1])
            except ValueError:
                return False, f"Invalid parameter or value: {' '.join(args)}"
            if value <= 0 or (args[0] != "maxTime" and value != int(value)):
                return False, f"Invalid parameter or value: {' '.join(args)}"
            self.params[args[0]] = value
            return True, ""
        if name == "kata-set-rules":
            rules = " ".join(args)
            if rules.strip().lower() not in RULES:
                return False, f"Unknown rules '{rules}', could not parse rules: {rules}"
            self.rules = rules.strip().lower()
            print(f"Changed rules to {self.rules}", file=sys.stderr, flush=True)
            return True, ""
        if name == "kata-get-rules":
            return True, json.dumps({"rules": self.rules})
        if name == "play":
            if len(args) != 2:
                return False, f"Expected two arguments for play but got '{' '.join(args)}'"
            if args[0].upper() not in ("B", "W", "BLACK", "WHITE"):
                return False, f"Could not parse color: '{args[0]}'"
            try:
                point = self.board.vertex(args[1])
            except ValueError:
                return False, f"Could not parse vertex: '{args[1]}'"
            if not self.board.play(args[0].upper()[0], point, self.suicide_ok):
                return False, "illegal move"
            return True, ""
        if name == "genmove":
            if len(args) != 1:
                return False, f"Expected one argument for genmove but got '{' '.join(args)}'"
            if args[0].upper() not in ("B", "W", "BLACK", "WHITE"):
                return False, f"Could not parse color: '{args[0]}'"
            return True, self.genmove(args[0].upper()[0])
        if name == "kata-raw-nn":
            which = args[0].lower() if len(args) == 1 else ""
            if which != "all" and which not in map(str, range(8)):
                return False, (
                    "Expected one argument 'all' or symmetry index [0-7] for kata-raw-nn "
                    f"but got '{' '.join(args)}'"
                )
            return True, self.raw_nn(range(8) if which == "all" else [int(which)])
        if name == "final_score":
            return True, self.final_score()
        if name == "showboard":
            return True, self.showboard()
        return False, "unknown command"

    def candidates(self, color: str) -> list[tuple[int, int]]:
        board = self.board
        points = [(x, y) for y in range(board.size - 1, -1, -1) for x in range(board.size)]
        return [p for p in points if board.legal(color, p, self.suicide_ok) and not board.own_eye(color, p)]

    def genmove(self, color: str) -> str:
        # Nearest legal point to the centre (ties broken top-left first), never its own one-point eye.
        centre = (self.board.size - 1) / 2
        options = sorted(self.candidates(color), key=lambda p: abs(p[0] - centre) + abs(p[1] - centre))
        if not options:
            self.board.play(color, None, self.suicide_ok)
            return "pass"
        self.board.play(color, options[0], self.suicide_ok)
        return self.board.name(options[0])

    def raw_nn(self, symmetries) -> str:
        board = self.board
        black = sum(1 for c in board.stones.values() if c == "B")
        white = len(board.stones) - black
        lead = self.komi + white - black
        white_win = min(0.99, max(0.01, 0.5 + lead / 40))
        legal = set(self.candidates(board.to_play))
        owner = self.ownership()
        lines = []
        for symmetry in symmetries:
            # KataGo prints rows from the top of the board down, left to right.
            rows = [[(x, y) for x in range(board.size)] for y in range(board.size - 1, -1, -1)]
            share = 1 / (len(legal) + 1)
            lines += [
                f"symmetry {symmetry}",
                f"whiteWin {white_win:.6f}",
                f"whiteLoss {1 - white_win:.6f}",
                "noResult 0.000000",
                f"whiteLead {lead:.3f}",
                f"whiteScoreSelfplay {lead:.3f}",
                f"whiteScoreSelfplaySq {lead * lead + 25:.3f}",
                "varTimeLeft 40.000",
                "shorttermWinlossError 0.200",
                "shorttermScoreError 4.000",
                "policy",
                *("".join(f"{share:8.6f} " if p in legal else "    NAN " for p in row) for row in rows),
                f"policyPass {share:8.6f} ",
                "whiteOwnership",
                # From White's side: 1 is White's point, -1 Black's.
                *("".join(f"{owner.get(p, 0.0):9.7f} " for p in row) for row in rows),
            ]
        return "\n".join(lines)

    def ownership(self) -> dict[tuple[int, int], float]:
        """Who owns each point, from White's side (1 White's, -1 Black's), by a crude rule.

        A chain is dead when the area it can reach through empty points and its own stones holds
        fewer than a quarter as many of its own stones as there are enemy stones around that area
        (a lone stone inside a territory). Empty regions bordered by one colour's living stones
        are that colour's. Enough for clear finished positions, not for real life and death.
        """
        board = self.board
        dead: set = set()
        seen: set = set()
        for point, color in board.stones.items():
            if point in seen:
                continue
            chain = board.group(board.stones, point)[0]
            seen |= chain
            area, border, todo = set(chain), set(), list(chain)
            while todo:
                for near in board.neighbours(todo.pop()):
                    there = board.stones.get(near)
                    if there is not None and there != color:
                        border.add(near)
                    elif near not in area:
                        area.add(near)
                        todo.append(near)
            own = sum(1 for p in area if board.stones.get(p) == color)
            if own * 4 < len(border):
                dead |= chain
        owner = {}
        for point, color in board.stones.items():
            white = (color == "W") != (point in dead)
            owner[point] = 0.9 if white else -0.9
        alive = {p: c for p, c in board.stones.items() if p not in dead}
        for x in range(board.size):
            for y in range(board.size):
                if (x, y) in alive or (x, y) in owner and (x, y) not in dead:
                    continue
                region, borders, todo = {(x, y)}, set(), [(x, y)]
                while todo:
                    for near in board.neighbours(todo.pop()):
                        if near in alive:
                            borders.add(alive[near])
                        elif near not in region:
                            region.add(near)
                            todo.append(near)
                if len(borders) == 1:
                    value = 0.8 if borders.pop() == "W" else -0.8
                    for p in region:
                        owner[p] = owner[p] if p in dead else value
        return owner

    def final_score(self) -> str:
        # Area scoring: stones plus empty regions that touch one colour only.
        board, score = self.board, {"B": 0.0, "W": self.komi}
        for color in board.stones.values():
            score[color] += 1
        seen: set = set()
        for x in range(board.size):
            for y in range(board.size):
                if (x, y) in board.stones or (x, y) in seen:
                    continue
                region, borders, todo = {(x, y)}, set(), [(x, y)]
                while todo:
                    for near in board.neighbours(todo.pop()):
                        if near in board.stones:
                            borders.add(board.stones[near])
                        elif near not in region:
                            region.add(near)
                            todo.append(near)
                seen |= region
                if len(borders) == 1:
                    score[borders.pop()] += len(region)
        diff = score["B"] - score["W"]
        return "0" if diff == 0 else f"B+{diff:g}" if diff > 0 else f"W+{-diff:g}"

    def showboard(self) -> str:
        board = self.board
        rows = []
        for y in range(board.size - 1, -1, -1):
            cells = (board.stones.get((x, y), ".") for x in range(board.size))
            rows.append(f"{y + 1:2} " + " ".join(cells).replace("B", "X").replace("W", "O"))
        return "\n".join(rows)


def trapped(name: str) -> None:
    path = os.environ.get("FAKE_KATAGO_TRAP")
    if not path:
        return
    try:
        action, command = Path(path).read_text(encoding="utf-8").split()
    except (OSError, ValueError):
        return
    if command != name:
        return
    Path(path).unlink(missing_ok=True)
    log("trap", action=action, command=name)
    if action == "die":
        os._exit(137)
    while action == "hang":
        time.sleep(3600)


def main() -> None:
    log("start", argv=sys.argv[1:])
    check_argv(sys.argv[1:])
    time.sleep(float(os.environ.get("FAKE_KATAGO_LOAD_SECONDS", "0")))
    hold = os.environ.get("FAKE_KATAGO_HOLD")
    if hold and os.path.exists(hold):
        log("holding")
        parent = os.getppid()
        while os.path.exists(hold):
            if os.getppid() != parent:
                sys.exit(1)  # the gateway is gone: do not linger
            time.sleep(0.02)
    log("ready")
    # What KataGo writes to stderr once loaded: the gateway must keep that pipe drained.
    print(f"Loaded model {sys.argv[sys.argv.index('-model') + 1]}", file=sys.stderr)
    print("GTP ready, beginning main protocol loop", file=sys.stderr, flush=True)
    engine = Engine()
    for raw in sys.stdin:
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        ident = words.pop(0) if words[0].isdigit() else ""
        if not words:
            continue
        name, args = words[0], words[1:]
        log("command", command=" ".join(words))
        trapped(name)
        ok, text = engine.handle(name, args)
        sys.stdout.write(f"{'=' if ok else '?'}{ident} {text}".rstrip(" ") + "\n\n")
        sys.stdout.flush()
        if name == "quit":
            return


if __name__ == "__main__":
    main()
