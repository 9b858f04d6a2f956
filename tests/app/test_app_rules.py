"""The rules of Go as the backend judges them."""

from __future__ import annotations

import pytest
from tengen_app.rules import BadVertex, Game, IllegalMove


def game_from(size: int, moves: str, komi: float = 7.5) -> Game:
    """Moves alternate from Black: "D4 E5 pass ..."."""
    game = Game(size, komi)
    for vertex in moves.split():
        game.play(game.to_play, vertex)
    return game


def test_a_stone_without_liberties_is_captured() -> None:
    # White E5 is surrounded by D5, F5, E4 and finally E6.
    game = game_from(9, "D5 E5 F5 A1 E4 A2 E6")
    assert game.board.grid[4][4] == "."
    assert game.captures == {"B": 1, "W": 0}


def test_a_group_is_captured_whole_on_the_edge() -> None:
    # White A1-B1 on the edge: Black takes the last liberty with C1 after A2, B2.
    game = game_from(9, "A2 A1 B2 B1 C1")
    assert game.rows()[8][:3] == "..B"
    assert game.captures["B"] == 2


def test_suicide_is_illegal_and_changes_nothing() -> None:
    game = game_from(9, "B1 H8 A2")  # A1 has no liberty for White
    with pytest.raises(IllegalMove, match="suicide"):
        game.play("W", "A1")
    assert game.moves[-1] == ["B", "A2"]
    assert game.to_play == "W"
    assert game.board.grid[8][0] == "."


def test_a_move_that_captures_is_not_suicide() -> None:
    # Black A1 has no liberty of its own, but it takes the last liberty of White B1-A2 first.
    game = game_from(9, "C1 B1 B2 A2 A3 H8")
    game.play("B", "A1")
    assert game.captures["B"] == 2
    assert game.rows()[8][:2] == "B."


def test_simple_ko_forbids_the_immediate_retake() -> None:
    # A ko at E5/F5: Black captures at F5 ... White may not retake E5 at once.
    game = game_from(9, "E4 F4 D5 G5 E6 F6 H9 E5 F5")
    assert game.captures["B"] == 1
    with pytest.raises(IllegalMove, match="ko"):
        game.play("W", "E5")
    # After a move elsewhere (a ko threat and its answer) the retake is legal.
    game.play("W", "A9")
    game.play("B", "A8")
    game.play("W", "E5")
    assert game.captures["W"] == 1


def test_occupied_out_of_turn_and_finished() -> None:
    game = game_from(9, "E5")
    with pytest.raises(IllegalMove, match="occupied"):
        game.play("W", "E5")
    with pytest.raises(IllegalMove, match="turn"):
        game.play("B", "D4")
    game.play("W", "resign")
    assert game.result == "B+R"
    with pytest.raises(IllegalMove, match="over"):
        game.play("B", "D4")


@pytest.mark.parametrize("vertex", ["I5", "J10", "Z1", "E0", "", "E", "55"])
def test_vertices_off_the_board_are_bad_input(vertex: str) -> None:
    with pytest.raises(BadVertex):
        game_from(9, "").play("B", vertex)


def test_unsupported_size() -> None:
    with pytest.raises(ValueError, match="not supported"):
        Game(7, 7.5)


def test_two_passes_end_the_game_with_area_scoring() -> None:
    # Black walls off the left three columns (27 points), White the right five (45 points).
    moves = []
    for row in range(1, 10):
        moves += [f"C{row}", f"E{row}"]
    game = game_from(9, " ".join(moves) + " pass pass", komi=7.5)
    assert game.finished
    # Column D is neutral (touches both), so: Black 27, White 45 + 7.5.
    assert game.score() == {"black": 27, "white": 52.5, "result": "W+25.5"}
    assert game.result == "W+25.5"


def test_empty_board_score_is_komi() -> None:
    assert game_from(9, "pass pass", komi=6.5).result == "W+6.5"
    assert game_from(13, "pass pass", komi=0).result == "0"


def test_a_pass_after_a_move_does_not_end_the_game() -> None:
    game = game_from(9, "pass E5 pass")
    assert not game.finished


def test_sgf_export() -> None:
    game = game_from(9, "E5 C3 pass pass")
    sgf = game.sgf("Ann", "Bo]b")
    assert sgf.startswith("(;FF[4]GM[1]")
    assert "SZ[9]" in sgf and "KM[7.5]" in sgf and "PB[Ann]" in sgf and "PW[Bo\\]b]" in sgf
    assert "RE[W+" in sgf
    assert sgf.strip().endswith(";B[ee];W[cg];B[];W[])")


def test_replaying_the_moves_gives_the_same_game() -> None:
    game = game_from(9, "E4 F4 D5 G5 E6 F6 H9 E5 F5 A9 A8")
    again = Game(9, 7.5, game.moves)
    assert again.rows() == game.rows()
    assert again.captures == game.captures
