#!/usr/bin/env python3
"""GNU Go's time per move at each of the backend's levels (tengen_app.engine.LEVELS).

  python benchmarks/engine_levels.py [--positions N]

GNU Go runs over GTP as the gateway starts it (`--mode gtp --level L --chinese-rules`), one
process per level, and answers `genmove` on N positions per board size: 9x9 after 10 moves and
19x19 after 60 (legal random moves from a fixed seed, like the gateway tests' busy position).
Printed: the median and the slowest move per level and size. A move that fails prints nothing.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "files" / "app")]

from tengen_app.engine import LEVELS  # noqa: E402
from tengen_app.rules import Game, IllegalMove  # noqa: E402

GNUGO = shutil.which("gnugo", path="/usr/bin:/usr/games") or "/usr/games/gnugo"


def position(size: int, moves: int, seed: int) -> list[list[str]]:
    rng = random.Random(seed)
    game = Game(size, 7.5)
    while len(game.moves) < moves:
        try:
            game.play(game.to_play, f"{rng.choice('ABCDEFGHJKLMNOPQRST'[:size])}{rng.randint(1, size)}")
        except IllegalMove:
            continue
    return game.moves


class Gtp:
    def __init__(self, level: int) -> None:
        self.proc = subprocess.Popen(
            [GNUGO, "--mode", "gtp", "--level", str(level), "--chinese-rules"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ask(self, command: str) -> str:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        lines = []
        while (line := self.proc.stdout.readline()) not in ("\n", ""):
            lines.append(line.strip())
        answer = " ".join(lines)
        if not answer.startswith("="):
            raise RuntimeError(f"{command}: {answer}")
        return answer[1:].strip()

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--positions", type=int, default=5, help="positions per board size")
    args = parser.parse_args()
    for name, level in LEVELS.items():
        engine = Gtp(level["gnugo_level"])
        try:
            for size, moves in ((9, 10), (19, 60)):
                times = []
                for seed in range(args.positions):
                    setup = [f"boardsize {size}", "clear_board", "komi 7.5"]
                    setup += [f"play {c} {v}" for c, v in position(size, moves, seed)]
                    for command in setup:
                        engine.ask(command)
                    started = time.monotonic()
                    engine.ask("genmove B" if moves % 2 == 0 else "genmove W")
                    times.append(time.monotonic() - started)
                print(
                    f"{name:9} GNU Go level {level['gnugo_level']:2} {size}x{size}: "
                    f"median {statistics.median(times):.2f} s, slowest {max(times):.2f} s"
                    f" ({len(times)} moves)",
                    flush=True,
                )
        finally:
            engine.close()


if __name__ == "__main__":
    main()
