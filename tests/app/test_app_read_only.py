"""The rollback's freeze: tengen.ops.postgres_read_only makes the stack's database refuse writes,
and a backend replica connected to it answers writes with 503 and Retry-After while reads go on."""

from __future__ import annotations

import psycopg

from tests.module_runner import run_module
from tests.service_servers import Postgres, Server, create, play, request, start_backend

MODULE = "tengen.ops.postgres_read_only"
PASSWORD = "pw-R3adOnly-q7"


def with_password(url: str) -> str:
    """The cluster trusts local connections, so a password in the URL is accepted and ignored."""
    return url.replace("postgresql://tengen@", f"postgresql://tengen:{PASSWORD}@")


def test_a_read_only_database_refuses_writes_with_503_and_serves_reads(
    tmp_path, engine: Server, postgres: Postgres
) -> None:
    url = postgres.new_database()
    backend = start_backend(tmp_path, engine.url, DATABASE_URL=url)
    try:
        game, tokens = create(backend, size=9, opponent="human")
        assert play(backend, game["id"], tokens["B"], "E5")[0] == 200

        planned, output = run_module(
            MODULE, {"database_url": with_password(url), "read_only": True}, check=True
        )
        assert planned["changed"] is True and "terminated" not in planned
        assert play(backend, game["id"], tokens["W"], "C3")[0] == 200  # check mode changed nothing

        frozen, output = run_module(
            MODULE, {"database_url": with_password(url), "read_only": True}, verbosity=3
        )
        assert frozen["changed"] is True and frozen["terminated"] >= 1, frozen  # the backend's session
        assert PASSWORD not in output

        # The backend's session was ended; it reconnects, read-only: reads go on, writes get 503.
        status, data = request("GET", f"{backend.url}/api/games/{game['id']}")
        assert status == 200 and data["moves"] == [["B", "E5"], ["W", "C3"]]
        status, refused = play(backend, game["id"], tokens["B"], "D4")
        assert status == 503 and refused["reason"] == "read-only", refused
        created = request("POST", f"{backend.url}/api/games", {"size": 9, "opponent": "human"})
        assert created[0] == 503
        with psycopg.connect(url) as pg:
            assert pg.execute("SELECT count(*), max(version) FROM games").fetchone() == (1, 2)

        # A replica that starts while the database is read-only serves reads too (an ECS task replaced).
        late = start_backend(tmp_path, engine.url, DATABASE_URL=url)
        try:
            assert request("GET", f"{late.url}/api/games/{game['id']}")[0] == 200
            assert play(late, game["id"], tokens["B"], "D4")[0] == 503
        finally:
            assert late.stop() == 0

        again, _ = run_module(MODULE, {"database_url": with_password(url), "read_only": True})
        assert again["changed"] is False and not again.get("failed"), again

        thawed, _ = run_module(MODULE, {"database_url": with_password(url), "read_only": False})
        assert thawed["changed"] is True and not thawed.get("failed"), thawed
        # A session opened before the reset keeps read-only until it reconnects: the backend's
        # connection is ended by nothing here, so a new backend shows what new sessions get.
    finally:
        assert backend.stop() == 0
    backend = start_backend(tmp_path, engine.url, DATABASE_URL=url)
    try:
        assert play(backend, game["id"], tokens["B"], "D4")[0] == 200
    finally:
        backend.stop()


def test_an_unreachable_database_is_named_without_its_password() -> None:
    url = f"postgresql://tengen:{PASSWORD}@127.0.0.1:1/tengen"
    result, output = run_module(MODULE, {"database_url": url, "read_only": True}, verbosity=3)
    assert result.get("failed") is True
    assert "cannot reach postgresql://tengen:********@127.0.0.1:1/tengen" in result["msg"]
    assert PASSWORD not in output
