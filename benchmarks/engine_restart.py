#!/usr/bin/env python3
"""How long a request waits when the engine it runs on hangs, and how long the pool is unready.

  python benchmarks/engine_restart.py [--load SECONDS] [--timeout SECONDS]

The gateway runs in front of the fake KataGo (tests/engine/fake_katago.py), which takes
--load seconds to "load its network" like KataGo does. The request's engine hangs on genmove;
the figures are the time to the 504 (it should be the timeout, not the timeout plus the load)
and the time until /readyz answers 200 again (the replacement's load).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "files" / "engine")]

from tests.engine.conftest import launch_katago  # noqa: E402
from tests.service_servers import request  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--load", type=float, default=4.0, help="seconds the fake KataGo takes to start")
    parser.add_argument("--timeout", type=float, default=1.0, help="the gateway's request timeout")
    args = parser.parse_args()
    katago = launch_katago(
        Path(tempfile.mkdtemp()),
        FAKE_KATAGO_LOAD_SECONDS=str(args.load),
        TENGEN_ENGINE_TIMEOUT=str(args.timeout),
        TENGEN_KATAGO_MAX_TIME=str(args.timeout / 2),
    )
    try:
        katago.trap("hang", "genmove")
        started = time.monotonic()
        status, _ = request("POST", f"{katago.server.url}/move", {"size": 9, "moves": [], "color": "B"})
        answered = time.monotonic() - started
        while request("GET", f"{katago.server.url}/readyz")[0] != 200:
            time.sleep(0.05)
        ready = time.monotonic() - started
    finally:
        katago.server.stop()
    if status != 504:
        raise SystemExit(f"the hung request answered {status}, not 504: no figures")
    print(f"engine load {args.load:g} s, request timeout {args.timeout:g} s")
    print(f"hung request answered {status} after {answered:.2f} s")
    print(f"gateway ready again after {ready:.2f} s")


if __name__ == "__main__":
    main()
