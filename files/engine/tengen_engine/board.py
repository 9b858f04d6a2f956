"""The final position of a game replayed from its moves, and its score once the dead stones are known.

The engine says which stones are dead (GNU Go: `final_status_list dead`; KataGo: the ownership
of its network); counting is done here, the same way for both engines:
- chinese (area): stones left on the board plus empty regions bordered by one colour only,
  dead stones' points going to the colour around them; plus komi for White;
- japanese (territory): those empty regions and dead stones' points, plus the prisoners
  (stones captured during the game and the dead stones); plus komi for White.
The moves were checked by the engine first, so an illegal one here is only skipped.
"""

from __future__ import annotations

COLUMNS = "ABCDEFGHJKLMNOPQRST"
Point = tuple[int, int]


def parse(vertex: str) -> Point | None:
    if vertex.upper() == "PASS":
        return None
    return COLUMNS.index(vertex[0].upper()), int(vertex[1:]) - 1


def name(point: Point) -> str:
    return f"{COLUMNS[point[0]]}{point[1] + 1}"


class Board:
    def __init__(self, size: int, moves: list[tuple[str, str]]) -> None:
        self.size = size
        self.stones: dict[Point, str] = {}
        self.captured = {"B": 0, "W": 0}  # stones of each colour taken off the board
        for color, vertex in moves:
            point = parse(vertex)
            if point is not None:
                self._play(color, point)

    def neighbours(self, point: Point) -> list[Point]:
        x, y = point
        near = ((x - 1, y), (x + 1, y), (x, y - 1), (x, y + 1))
        return [(a, b) for a, b in near if 0 <= a < self.size and 0 <= b < self.size]

    def chain(self, point: Point) -> tuple[set[Point], set[Point]]:
        """The stones connected to `point` and their liberties."""
        color, stones, liberties, todo = self.stones[point], {point}, set(), [point]
        while todo:
            for near in self.neighbours(todo.pop()):
                if near not in self.stones:
                    liberties.add(near)
                elif self.stones[near] == color and near not in stones:
                    stones.add(near)
                    todo.append(near)
        return stones, liberties

    def chains(self) -> list[set[Point]]:
        seen: set[Point] = set()
        found = []
        for point in sorted(self.stones):
            if point not in seen:
                stones = self.chain(point)[0]
                seen |= stones
                found.append(stones)
        return found

    def _play(self, color: str, point: Point) -> None:
        if point in self.stones:
            return
        self.stones[point] = color
        other = "W" if color == "B" else "B"
        for near in self.neighbours(point):
            if self.stones.get(near) == other:
                stones, liberties = self.chain(near)
                if not liberties:
                    for stone in stones:
                        del self.stones[stone]
                    self.captured[other] += len(stones)
        if not self.chain(point)[1]:  # suicide: refused by the engine, not played
            del self.stones[point]

    def score(self, dead: set[Point], rules: str, komi: float) -> dict:
        """Points of each colour and the result ("B+3.5", "W+0.5", "0") with `dead` stones removed."""
        alive = {p: c for p, c in self.stones.items() if p not in dead}
        area = {"B": 0.0, "W": komi}
        territory = {"B": 0.0, "W": komi}
        for color in alive.values():
            area[color] += 1
        # Prisoners: a captured black stone is a point for White, and so is a dead one.
        territory["W"] += self.captured["B"] + sum(1 for p in dead if self.stones[p] == "B")
        territory["B"] += self.captured["W"] + sum(1 for p in dead if self.stones[p] == "W")
        seen: set[Point] = set()
        for x in range(self.size):
            for y in range(self.size):
                if (x, y) in alive or (x, y) in seen:
                    continue
                region, borders, todo = {(x, y)}, set(), [(x, y)]
                while todo:
                    for near in self.neighbours(todo.pop()):
                        if near in alive:
                            borders.add(alive[near])
                        elif near not in region:
                            region.add(near)
                            todo.append(near)
                seen |= region
                if len(borders) == 1:
                    owner = borders.pop()
                    area[owner] += len(region)
                    territory[owner] += len(region)
        points = area if rules == "chinese" else territory
        diff = points["B"] - points["W"]
        result = "0" if diff == 0 else f"B+{diff:g}" if diff > 0 else f"W+{-diff:g}"
        return {"score": {"B": points["B"], "W": points["W"]}, "result": result}
