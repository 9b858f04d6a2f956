"""Go rules: legal moves (captures, no suicide, simple ko), passes, resignation, area scoring, SGF.

A game is its list of moves; the board is rebuilt by replaying them, which keeps the stored
state small and makes every check start from one source of truth. Vertices use GTP notation
("D4", columns A-T without I, rows counted from the bottom), as the engines do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SIZES = (9, 13, 19)
COLUMNS = "ABCDEFGHJKLMNOPQRST"
BLACK, WHITE, EMPTY = "B", "W", "."
PASS, RESIGN = "pass", "resign"


class IllegalMove(ValueError):
    """A move the rules forbid; the message says why."""


class BadVertex(IllegalMove):
    """Not a vertex on this board at all (bad input rather than a bad move)."""


def other(color: str) -> str:
    return WHITE if color == BLACK else BLACK


def parse_vertex(vertex: str, size: int) -> tuple[int, int] | None:
    """GTP vertex to (column, row-from-top); None for a pass. Raises IllegalMove when malformed."""
    text = vertex.strip().upper()
    if text == "PASS":
        return None
    if len(text) < 2 or text[0] not in COLUMNS[:size] or not text[1:].isdigit():
        raise BadVertex(f"{vertex!r} is not a vertex on a {size}x{size} board")
    row = int(text[1:])
    if not 1 <= row <= size:
        raise BadVertex(f"{vertex!r} is not a vertex on a {size}x{size} board")
    return COLUMNS.index(text[0]), size - row


def vertex_name(point: tuple[int, int] | None, size: int) -> str:
    if point is None:
        return PASS
    x, y = point
    return f"{COLUMNS[x]}{size - y}"


@dataclass
class Board:
    size: int
    grid: list[list[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.grid:
            self.grid = [[EMPTY] * self.size for _ in range(self.size)]

    def copy(self) -> Board:
        return Board(self.size, [row[:] for row in self.grid])

    def key(self) -> str:
        return "".join("".join(row) for row in self.grid)

    def neighbours(self, x: int, y: int) -> list[tuple[int, int]]:
        return [
            (nx, ny)
            for nx, ny in ((x - 1, y), (x + 1, y), (x, y - 1), (x, y + 1))
            if 0 <= nx < self.size and 0 <= ny < self.size
        ]

    def group(self, x: int, y: int) -> tuple[set[tuple[int, int]], set[tuple[int, int]]]:
        """The chain through (x, y) and its liberties."""
        color = self.grid[y][x]
        stones, liberties, todo = {(x, y)}, set(), [(x, y)]
        while todo:
            cx, cy = todo.pop()
            for nx, ny in self.neighbours(cx, cy):
                here = self.grid[ny][nx]
                if here == EMPTY:
                    liberties.add((nx, ny))
                elif here == color and (nx, ny) not in stones:
                    stones.add((nx, ny))
                    todo.append((nx, ny))
        return stones, liberties

    def place(self, color: str, x: int, y: int) -> int:
        """Put a stone, remove the opponent chains left without liberties; returns the captures.

        Raises IllegalMove on an occupied point or a suicide (the board is then unchanged).
        """
        if self.grid[y][x] != EMPTY:
            raise IllegalMove(f"{vertex_name((x, y), self.size)} is occupied")
        self.grid[y][x] = color
        captured = 0
        for nx, ny in self.neighbours(x, y):
            if self.grid[ny][nx] == other(color):
                stones, liberties = self.group(nx, ny)
                if not liberties:
                    captured += len(stones)
                    for sx, sy in stones:
                        self.grid[sy][sx] = EMPTY
        if not self.group(x, y)[1]:
            self.grid[y][x] = EMPTY
            raise IllegalMove(f"{vertex_name((x, y), self.size)} is suicide")
        return captured

    def without(self, dead: set[tuple[int, int]]) -> Board:
        """The board with the dead stones taken off (their points then belong to whoever surrounds them)."""
        board = self.copy()
        for x, y in dead:
            board.grid[y][x] = EMPTY
        return board

    def area_score(self) -> dict[str, int]:
        """Stones on the board plus empty regions that touch one colour only (every stone counts as alive)."""
        score = {BLACK: 0, WHITE: 0}
        seen: set[tuple[int, int]] = set()
        for y in range(self.size):
            for x in range(self.size):
                here = self.grid[y][x]
                if here != EMPTY:
                    score[here] += 1
                    continue
                if (x, y) in seen:
                    continue
                region, borders, todo = {(x, y)}, set(), [(x, y)]
                while todo:
                    cx, cy = todo.pop()
                    for nx, ny in self.neighbours(cx, cy):
                        there = self.grid[ny][nx]
                        if there == EMPTY and (nx, ny) not in region:
                            region.add((nx, ny))
                            todo.append((nx, ny))
                        elif there != EMPTY:
                            borders.add(there)
                seen |= region
                if len(borders) == 1:
                    score[borders.pop()] += len(region)
        return score


@dataclass
class Game:
    """A game replayed from its moves: [color, vertex] pairs, vertex "pass" or "resign"."""

    size: int
    komi: float
    moves: list[list[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.size not in SIZES:
            raise ValueError(f"board size {self.size} is not supported (choose one of {SIZES})")
        history, self.moves = self.moves, []
        self.board = Board(self.size)
        self.previous_key = ""  # the position before the last move: a recapture may not return to it
        self.captures = {BLACK: 0, WHITE: 0}
        self.result: str | None = None
        # Stones judged dead once the game ended by two passes (vertices); empty until judged.
        self.dead: list[str] = []
        for color, vertex in history:
            self.play(color, vertex)

    @property
    def to_play(self) -> str:
        return BLACK if len(self.moves) % 2 == 0 else WHITE

    @property
    def finished(self) -> bool:
        return self.result is not None

    def play(self, color: str, vertex: str) -> None:
        if self.finished:
            raise IllegalMove("the game is over")
        if color != self.to_play:
            raise IllegalMove(f"it is {self.to_play}'s turn, not {color}'s")
        if vertex.lower() == RESIGN:
            self.moves.append([color, RESIGN])
            self.result = f"{other(color)}+R"
            return
        point = parse_vertex(vertex, self.size)
        if point is None:
            self.moves.append([color, PASS])
            self.previous_key = self.board.key()
            if len(self.moves) >= 2 and self.moves[-2][1] == PASS:
                self.result = self.score()["result"]
            return
        before = self.board.key()
        board = self.board.copy()
        captured = board.place(color, *point)
        if board.key() == self.previous_key:
            raise IllegalMove(f"{vertex_name(point, self.size)} retakes the ko at once")
        self.board, self.previous_key = board, before
        self.captures[color] += captured
        self.moves.append([color, vertex_name(point, self.size)])

    @property
    def ended_by_passes(self) -> bool:
        return self.finished and self.moves[-1][1] == PASS

    def judge(self, dead: list[str]) -> None:
        """Take the dead stones of a game ended by two passes into the count: they are removed and
        their points go to the side that surrounds them. Raises IllegalMove for a vertex that holds
        no stone."""
        if not self.ended_by_passes:
            raise IllegalMove("only a game ended by two passes has dead stones")
        points = set()
        for vertex in dead:
            point = parse_vertex(vertex, self.size)
            if point is None or self.board.grid[point[1]][point[0]] == EMPTY:
                raise IllegalMove(f"{vertex!r} is not a stone on the board")
            points.add(point)
        self.dead = sorted(vertex_name(p, self.size) for p in points)
        self.result = self.score()["result"]

    def score(self) -> dict[str, object]:
        """Area scoring (Chinese): stones and surrounded points; dead stones count for the other side."""
        dead = {parse_vertex(vertex, self.size) for vertex in self.dead}
        area = self.board.without(dead).area_score()
        margin = area[BLACK] - area[WHITE] - self.komi
        if margin == 0:
            result = "0"
        else:
            result = f"{BLACK if margin > 0 else WHITE}+{abs(margin):g}"
        return {"black": area[BLACK], "white": area[WHITE] + self.komi, "result": result}

    def rows(self) -> list[str]:
        return ["".join(row) for row in self.board.grid]

    def sgf(self, black: str = "Black", white: str = "White") -> str:
        def esc(text: str) -> str:
            return text.replace("\\", "\\\\").replace("]", "\\]")

        head = (
            f"(;FF[4]GM[1]CA[UTF-8]AP[tengen]SZ[{self.size}]KM[{self.komi:g}]RU[Chinese]"
            f"PB[{esc(black)}]PW[{esc(white)}]"
        )
        if self.result:
            head += f"RE[{self.result}]"
        body = ""
        for color, vertex in self.moves:
            if vertex == RESIGN:
                continue
            point = parse_vertex(vertex, self.size)
            coord = "" if point is None else "abcdefghijklmnopqrs"[point[0]] + "abcdefghijklmnopqrs"[point[1]]
            body += f";{color}[{coord}]"
        return head + body + ")\n"
