"""The KataGo image's build choices that can be checked without building it (KataGo cannot be
downloaded here): the CPU check in front of an AVX2 build, and our KataGo configuration."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from tengen_engine.app import Settings
from tengen_engine.cpu import cpu_flags, cpu_problem

from tests.engine.conftest import FAKE_KATAGO, KATAGO_CONFIG
from tests.service_servers import ENGINE_DIR, request

DOCKERFILE = ENGINE_DIR / "Dockerfile"
CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) CPU E5-2650 v2 @ 2.60GHz
flags\t\t: fpu vme de pse tsc msr pae mce cx8 sse sse2 ssse3 sse4_1 sse4_2 popcnt avx {extra}

processor\t: 1
flags\t\t: fpu vme de pse tsc msr pae mce cx8 sse sse2 ssse3 sse4_1 sse4_2 popcnt avx {extra}
"""


def write(tmp_path: Path, extra: str, required: str = "avx2 fma") -> tuple[Path, Path]:
    cpuinfo, flags = tmp_path / "cpuinfo", tmp_path / "cpu-flags"
    cpuinfo.write_text(CPUINFO.format(extra=extra))
    flags.write_text(required + "\n")
    return cpuinfo, flags


def test_cpu_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    cpuinfo, _ = write(tmp_path, "avx2 fma")
    assert {"avx", "avx2", "fma", "sse4_2"} <= cpu_flags(cpuinfo)
    assert "avx512f" not in cpu_flags(cpuinfo)


@pytest.mark.parametrize(
    ("extra", "required", "missing"),
    [
        ("", "avx2 fma", "avx2 fma"),
        ("avx2", "avx2 fma", "fma"),
        ("avx2 fma", "avx2 fma", None),
        ("", "", None),
    ],
)
def test_the_cpu_check_names_what_is_missing(tmp_path, extra, required, missing) -> None:
    cpuinfo, flags = write(tmp_path, extra, required)
    problem = cpu_problem(flags, cpuinfo)
    if missing is None:
        assert problem is None
    else:
        assert problem is not None and f"lacks {missing} " in problem and "KATAGO_AVX2=0" in problem
    assert cpu_problem(tmp_path / "no-such-build", cpuinfo) is None  # not a KataGo image


def test_the_gateway_refuses_to_start_katago_on_a_cpu_without_avx2(tmp_path: Path) -> None:
    cpuinfo, flags = write(tmp_path, "")
    events = tmp_path / "events.jsonl"
    model = tmp_path / "model.bin.gz"
    model.write_bytes(b"x")
    done = subprocess.run(
        [sys.executable, "-m", "tengen_engine"],
        cwd=ENGINE_DIR,
        env={
            **os.environ,
            "TENGEN_ENGINE": "katago",
            "TENGEN_ENGINE_PORT": "0",
            "TENGEN_KATAGO_BIN": str(FAKE_KATAGO),
            "TENGEN_KATAGO_MODEL": str(model),
            "TENGEN_KATAGO_CONFIG": str(KATAGO_CONFIG),
            "TENGEN_KATAGO_CPU_FLAGS_FILE": str(flags),
            "TENGEN_CPUINFO": str(cpuinfo),
            "FAKE_KATAGO_LOG": str(events),
        },
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert "cannot run KataGo: this CPU lacks avx2 fma" in done.stderr
    assert "illegal instruction" in done.stderr and "--build-arg KATAGO_AVX2=0" in done.stderr
    assert not events.exists()  # refused before KataGo was started


def test_the_gateway_starts_katago_on_a_cpu_with_avx2(start_katago, tmp_path: Path) -> None:
    cpuinfo, flags = write(tmp_path, "avx2 fma bmi2")
    katago = start_katago(TENGEN_KATAGO_CPU_FLAGS_FILE=str(flags), TENGEN_CPUINFO=str(cpuinfo))
    assert request("GET", f"{katago.server.url}/readyz")[0] == 200


def dockerfile_value(pattern: str) -> str:
    found = re.search(pattern, DOCKERFILE.read_text(), re.MULTILINE)
    assert found, pattern
    return found.group(1)


def test_the_image_builds_avx2_by_default_and_wires_the_check_and_our_config() -> None:
    assert dockerfile_value(r"^ARG KATAGO_AVX2=(\S+)$") == "1"
    assert '-DUSE_AVX2="$KATAGO_AVX2"' in DOCKERFILE.read_text()
    flags_file = dockerfile_value(r"TENGEN_KATAGO_CPU_FLAGS_FILE=(\S+)")
    config = dockerfile_value(r"TENGEN_KATAGO_CONFIG=(\S+)")
    assert dockerfile_value(r"^COPY katago/gtp.cfg (\S+)$") == config == Settings.katago_config
    assert flags_file == str(Path(dockerfile_value(r"^COPY --from=build /out/share/ (\S+)$")) / "cpu-flags")
    # The build stage writes that file: "avx2 fma" for KATAGO_AVX2=1, empty for 0.
    assert 'echo "$flags" > /out/share/cpu-flags' in DOCKERFILE.read_text()


def read_config(path: Path) -> dict[str, str]:
    values = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def test_our_katago_config_suits_a_small_shared_vm() -> None:
    config = read_config(KATAGO_CONFIG)
    # No log files: /tmp is a tmpfs counted against the engine's memory limit.
    assert "logDir" not in config and "logFile" not in config
    assert config["logAllGTPCommunication"] == "false" and config["logSearchInfo"] == "false"
    assert config["logToStderr"] == "false"
    assert config["ponderingEnabled"] == "false"
    # One search thread and one NN thread for the engine's one CPU; a cache of at most 2^18 entries.
    assert config["numSearchThreads"] == "1" and config["numNNServerThreadsPerModel"] == "1"
    assert 12 <= int(config["nnCacheSizePowerOfTwo"]) <= 18
    # Every move ends well inside the gateway's request timeout.
    assert 0 < float(config["maxTime"]) <= Settings.timeout / 2
    assert 0 < Settings.katago_max_time <= Settings.timeout / 2
    assert int(config["maxVisits"]) >= 1
    assert config["rules"] in ("chinese", "japanese")


def test_the_gateway_passes_our_config_and_its_overrides(katago) -> None:
    (start,) = katago.events("start")
    argv = start["argv"]
    assert argv[argv.index("-config") + 1] == str(KATAGO_CONFIG)
    overrides = dict(item.split("=") for item in argv[argv.index("-override-config") + 1].split(","))
    assert overrides == {"maxVisits": "100", "maxTime": "5", "numSearchThreads": "1"}
