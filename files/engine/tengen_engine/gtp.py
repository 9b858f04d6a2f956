"""One engine process spoken to over GTP on its stdin/stdout."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

log = logging.getLogger("tengen.engine.gtp")


class GtpError(Exception):
    """The engine answered `? message` to a command."""


class EngineDied(Exception):
    """The process exited or closed its output."""


class GtpProcess:
    def __init__(self, argv: list[str], start_timeout: float = 120.0) -> None:
        self.argv = argv
        self.start_timeout = start_timeout
        self.proc: asyncio.subprocess.Process | None = None
        self.name = ""
        # True once the process has answered its first command (KataGo: the network is loaded).
        self.ready = False
        # The last lines the process wrote to stderr: KataGo says there why it refuses to start.
        self.stderr_tail: deque[str] = deque(maxlen=5)
        self.stderr_reader: asyncio.Task | None = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=1 << 20,
        )
        self.stderr_tail.clear()
        self.stderr_reader = asyncio.create_task(self._read_stderr(self.proc))
        # KataGo loads its network before it answers; the first reply says the engine is usable.
        # The wait is bounded so that a process stuck while loading is killed and started again.
        try:
            self.name = (await asyncio.wait_for(self.commands(["name"]), self.start_timeout))[0]
        except TimeoutError:
            self.kill()
            raise EngineDied(
                f"the engine did not answer within {self.start_timeout:g} s of starting"
            ) from None
        except EngineDied:
            code = await self.proc.wait()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.stderr_reader), 2)
            said = " / ".join(self.stderr_tail) or "nothing on stderr"
            raise EngineDied(
                f"the engine exited with code {code} before answering: {self.argv[0]}: {said}"
            ) from None
        self.ready = True

    async def _read_stderr(self, proc: asyncio.subprocess.Process) -> None:
        """Keep the pipe drained (a full one would block the engine) and the last lines at hand."""
        assert proc.stderr is not None
        while line := await proc.stderr.readline():
            if text := line.decode(errors="replace").strip():
                self.stderr_tail.append(text[:500])

    def kill(self) -> None:
        """Kill the process now, without waiting for it (its state is unknown)."""
        self.ready = False
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    async def stop(self) -> None:
        if self.proc is None:
            return
        self.kill()
        with contextlib.suppress(Exception):
            await self.proc.wait()
        if self.stderr_reader is not None:
            self.stderr_reader.cancel()
            # asyncio.wait, not `await reader` under suppress(CancelledError): that would also
            # swallow a cancellation of this task (a request's deadline), which would then wait
            # for the replacement to load.
            await asyncio.wait([self.stderr_reader])

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def commands(self, commands: list[str]) -> list[str]:
        """Send every command at once (GTP answers in order), then read the answers.

        Raises GtpError for the first refused command, after draining the rest so that
        the process stays in step for the next request.
        """
        if not self.alive:
            raise EngineDied("the engine process is not running")
        assert self.proc is not None and self.proc.stdin is not None
        try:
            self.proc.stdin.write("".join(f"{command}\n" for command in commands).encode())
            await self.proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise EngineDied("the engine process closed its input") from exc
        answers, error = [], None
        for command in commands:
            ok, text = await self._read_answer()
            if not ok and error is None:
                error = GtpError(f"{command}: {text}")
            answers.append(text)
        if error is not None:
            raise error
        return answers

    async def _read_answer(self) -> tuple[bool, str]:
        assert self.proc is not None and self.proc.stdout is not None
        lines: list[str] = []
        while True:
            raw = await self.proc.stdout.readline()
            if not raw:
                raise EngineDied("the engine process exited")
            line = raw.decode(errors="replace").rstrip("\r\n")
            if not line.strip():
                if lines:
                    break
                continue
            lines.append(line)
        first = lines[0]
        return first.startswith("="), "\n".join([first[1:].strip(), *lines[1:]]).strip()
