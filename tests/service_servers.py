"""Real servers for the game service tests: the backend, the engine gateway, PostgreSQL, Redis.

Each runs as a child process on a free 127.0.0.1 port and is stopped by the fixture that
started it. PostgreSQL refuses to run as root, so as root it runs as the `postgres` user.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from tests.conftest import REPO, free_port, wait_for_http

APP_DIR = REPO / "files" / "app"
ENGINE_DIR = REPO / "files" / "engine"
GNUGO = shutil.which("gnugo", path=f"{os.environ.get('PATH', '')}:/usr/games") or "/usr/games/gnugo"


@dataclass
class Server:
    proc: subprocess.Popen
    url: str
    log: Path
    env: dict = field(default_factory=dict)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_python(module: str, cwd: Path, env: dict, health_url: str, log: Path) -> subprocess.Popen:
    out = log.open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", module, "serve"] if module == "tengen_app" else [sys.executable, "-m", module],
        cwd=cwd,
        env={**os.environ, **env},
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_http(health_url, timeout=20)
    except TimeoutError:
        proc.kill()
        raise AssertionError(f"{module} did not come up:\n{log.read_text()}") from None
    return proc


def start_engine(tmp: Path, port: int | None = None, **env: str) -> Server:
    """A gateway on a free port, or on the given port (TENGEN_ENGINE_PORT too), to restart one in place."""
    port = port or int(env.get("TENGEN_ENGINE_PORT") or 0) or free_port()
    env = {"TENGEN_ENGINE_PORT": str(port), "TENGEN_GNUGO_LEVEL": "1", "TENGEN_GNUGO_BIN": GNUGO, **env}
    log = tmp / f"engine-{port}.log"
    proc = start_python("tengen_engine", ENGINE_DIR, env, f"http://127.0.0.1:{port}/readyz", log)
    return Server(proc, f"http://127.0.0.1:{port}", log, env)


def start_backend(tmp: Path, engine_url: str, **env: str) -> Server:
    port = free_port()
    env = {
        "TENGEN_PORT": str(port),
        "TENGEN_DB_PATH": str(tmp / "tengen.db"),
        "TENGEN_ENGINE_URL": engine_url,
        **env,
    }
    log = tmp / f"backend-{port}.log"
    proc = start_python("tengen_app", APP_DIR, env, f"http://127.0.0.1:{port}/healthz", log)
    return Server(proc, f"http://127.0.0.1:{port}", log, env)


def request(method: str, url: str, body: object = None, raw: bytes | None = None) -> tuple[int, dict | str]:
    """One HTTP request; returns the status and the decoded JSON body (or the text)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, text = resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read().decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def _as_postgres_user() -> dict:
    if os.geteuid() != 0:
        return {}
    user = pwd.getpwnam("postgres")
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def pg_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    assert found, "PostgreSQL server binaries are missing: apt-get install postgresql"
    return found[-1].parent


class Postgres:
    """A throwaway cluster in a temporary directory; `url` connects as the trusted user `tengen`."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="tengen-pg-"))
        self.port = free_port()
        self.url = f"postgresql://tengen@127.0.0.1:{self.port}/postgres"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Postgres:
        who = _as_postgres_user()
        if who:
            os.chown(self.dir, who["user"], who["group"])
        data = self.dir / "data"
        subprocess.run(
            [pg_bin() / "initdb", "-D", data, "-U", "tengen", "--auth=trust", "--no-sync", "-E", "UTF8"],
            check=True,
            capture_output=True,
            **who,
        )
        self.proc = subprocess.Popen(
            [pg_bin() / "postgres", "-D", data, "-p", str(self.port), "-k", self.dir]
            + ["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "full_page_writes=off"],
            stdout=subprocess.DEVNULL,
            stderr=(self.dir / "postgres.log").open("wb"),
            **who,
        )
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(self.url, connect_timeout=2).close()
                return self
            except psycopg.OperationalError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise AssertionError((self.dir / "postgres.log").read_text()) from None
                time.sleep(0.2)

    def new_database(self) -> str:
        """A new, empty database in the cluster; returns its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url.rsplit("/", 1)[0] + f"/{name}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            self.proc.wait(timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)


class Redis:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Redis:
        exe = shutil.which("redis-server")
        assert exe, "redis-server is missing: apt-get install redis-server"
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                client.close()
                return self
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


# Game API helpers shared by the backend tests and the benchmark.
def create(backend: Server, **body) -> tuple[dict, dict]:
    status, data = request("POST", f"{backend.url}/api/games", body)
    assert status == 201, data
    return data["game"], data["tokens"]


def play(backend: Server, game_id: str, token: str, move: str) -> tuple[int, dict]:
    if move in ("pass", "resign"):
        return request("POST", f"{backend.url}/api/games/{game_id}/{move}", {"token": token})
    return request("POST", f"{backend.url}/api/games/{game_id}/moves", {"token": token, "move": move})


async def next_game(ws: aiohttp.ClientWebSocketResponse, timeout: float = 20) -> dict:
    while True:
        msg = await asyncio.wait_for(ws.receive(), timeout)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        data = json.loads(msg.data)
        if data["type"] == "game":
            return data["game"]
