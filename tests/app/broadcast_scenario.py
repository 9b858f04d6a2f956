"""A broadcast with a slow and a broken reader among 200 sockets, standard library only.

The unit tier imports it (the host's Python); the docker tier runs it with the backend image's
Python, where sends start eagerly (3.12+): `python3 broadcast_scenario.py` exits 0 when it holds.
"""

from __future__ import annotations

import asyncio
import sys


def check_a_slow_reader_waits_alone_and_a_broken_one_stops_nobody() -> None:
    from tengen_app.pubsub import LocalPubSub

    durations: list[float] = []
    hub = LocalPubSub(observe=durations.append)
    received: list[tuple[int, str]] = []

    def fast(n: int):
        async def send(message: str) -> None:
            received.append((n, message))

        return send

    async def scenario() -> None:
        release = asyncio.Event()

        async def slow(message: str) -> None:
            await release.wait()
            received.append((-1, message))

        async def broken(message: str) -> None:
            raise ConnectionResetError("the peer went away")

        for n in range(200):
            hub.subscribe("g", fast(n))
        hub.subscribe("g", slow)
        hub.subscribe("g", broken)
        delivery = asyncio.create_task(hub.deliver("g", "event"))
        await asyncio.sleep(0.05)
        # Every fast socket has the event while the slow one still waits; the broadcast waits for it.
        assert sorted(n for n, _ in received) == list(range(200)), received[:5]
        assert not delivery.done() and durations == []
        release.set()
        await asyncio.wait_for(delivery, 5)
        assert (-1, "event") in received and len(received) == 201
        # Nothing is sent for a game nobody watches.
        await hub.deliver("other", "event")

    asyncio.run(scenario())
    assert len(durations) == 1 and durations[0] >= 0.05, durations


if __name__ == "__main__":
    check_a_slow_reader_waits_alone_and_a_broken_one_stops_nobody()
    print(f"broadcast scenario held on Python {sys.version.split()[0]}")
