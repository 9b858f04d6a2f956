"""The gateway's engine process (tengen_engine.gtp) under a request's deadline."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tengen_engine.gtp import GtpProcess

from tests.engine.conftest import FAKE_KATAGO, KATAGO_CONFIG


def test_stopping_a_process_passes_on_the_caller_s_cancellation(tmp_path: Path) -> None:
    # A request that times out while it restarts its engine is cancelled, possibly while stop()
    # waits for the stderr reader it has just cancelled. Swallowing that cancellation would let
    # the request go on to wait for the new process to load, past its deadline.
    model = tmp_path / "model.bin.gz"
    model.write_bytes(b"x")
    argv = [str(FAKE_KATAGO), "gtp", "-model", str(model), "-config", str(KATAGO_CONFIG)]

    async def scenario() -> None:
        engine = GtpProcess(argv, start_timeout=30)
        await engine.start()
        # The reader may see the end of the pipe before stop() cancels it or after: hold it
        # reading, so that stop() is sure to wait on it.
        assert engine.stderr_reader is not None
        engine.stderr_reader.cancel()
        reader = engine.stderr_reader = asyncio.create_task(asyncio.sleep(3600))
        stopping = asyncio.create_task(engine.stop())
        while not reader.cancelling():  # stop() has killed the process and cancelled the reader
            assert not stopping.done()
            await asyncio.sleep(0)
        assert not stopping.done()
        stopping.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stopping
        assert not engine.alive

    asyncio.run(scenario())
