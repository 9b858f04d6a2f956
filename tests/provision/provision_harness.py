"""Helpers to run the provisioning playbooks against fake_api.py, a local recording endpoint."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def _shared_conftest():
    """tests/conftest.py by path: every conftest.py is named "conftest", so import it by file."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("tengen_tests_shared", REPO / "tests" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


free_port = _shared_conftest().free_port
DO_TOKEN = "dop_v1_test_token_f00dfeedbeef"
AWS_SECRET = "aws-secret-never-written-8f3c1"
AWS_KEY_ID = "AKIATESTPROVISION01"


@dataclass
class Run:
    rc: int
    out: str
    changed: int
    failed: int


class FakeApi:
    def __init__(self, url: str) -> None:
        self.url = url

    def _get(self, path: str) -> object:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=10) as resp:
            return json.load(resp)

    def calls(self) -> list[dict]:
        return self._get("/_fake/calls")  # type: ignore[return-value]

    def state(self) -> dict:
        return self._get("/_fake/state")  # type: ignore[return-value]

    def reset_calls(self) -> None:
        req = urllib.request.Request(f"{self.url}/_fake/reset-calls", method="POST", data=b"")
        urllib.request.urlopen(req, timeout=10).close()


@pytest.fixture
def fake_api() -> Iterator[FakeApi]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "fake_api.py"), "--port", str(port), "--do-token", DO_TOKEN],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    api = FakeApi(f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 15
    while True:
        try:
            api.calls()
            break
        except OSError:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "fake API died"
            assert time.monotonic() < deadline, "fake API did not start"
            time.sleep(0.1)
    try:
        yield api
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def rsa_public_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An RSA key, the one type Lightsail's ImportKeyPair takes."""
    key = tmp_path_factory.mktemp("ssh-rsa") / "id_rsa"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-C", "op@example", "-f", str(key)],
        check=True,
    )
    return key.with_suffix(".pub")


@pytest.fixture(scope="session")
def public_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    key = tmp_path_factory.mktemp("ssh") / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "op@example", "-f", str(key)], check=True
    )
    return key.with_suffix(".pub")


def run_playbook(playbook: str, extra: dict, env: dict[str, str], check: bool = False) -> Run:
    """ansible-playbook as an operator runs it, from the repository root; returns the recap."""
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), playbook, "-e", json.dumps(extra)]
    if check:
        cmd.append("--check")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DO_", "OAUTH_"))}
    full_env = {
        **base,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        # one line per result, so that a failure message can be matched whole
        "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
        **env,
    }
    proc = subprocess.run(cmd, cwd=REPO, env=full_env, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    recap = re.search(r"localhost\s+: ok=\d+\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", out)
    assert recap, f"no play recap in output:\n{out}"
    return Run(proc.returncode, out, int(recap[1]), int(recap[2]))


def assert_changes(made: list, expected: list, *, before: tuple[tuple, ...] = ()) -> None:
    """The changing calls a run made: exactly `expected`, in any order but for the pairs in
    `before` (a call that needs what an earlier one made). Reads are not asserted: a module may add
    or reorder them harmlessly."""
    assert sorted(made, key=repr) == sorted(expected, key=repr), made
    for first, then in before:
        assert made.index(first) < made.index(then), f"{first} must come before {then}: {made}"
